"""Each vocabulary is declared once (emotune/vocab.py) and every user of it agrees."""

import typing

from emotune import vocab
from emotune.data.config import DataConfig
from emotune.model.config import ModelConfig
from emotune.model.registry import KINDS
from emotune.train.config import TrainConfig


def test_the_schema_and_the_registry_use_the_declared_vocabularies():
    assert set(KINDS) == set(vocab.MODEL_KINDS)
    hints = {**typing.get_type_hints(DataConfig), **typing.get_type_hints(TrainConfig)}
    assert typing.get_args(hints["target"]) == vocab.TARGETS
    assert typing.get_args(hints["protocol"]) == vocab.PROTOCOLS
    assert typing.get_args(hints["imbalance"]) == vocab.IMBALANCES
    assert typing.get_args(typing.get_type_hints(ModelConfig)["kind"]) == vocab.MODEL_KINDS
    assert set(vocab.GROUPED_PROTOCOLS) <= set(vocab.PROTOCOLS)
