"""A checkpoint is resumed only by a run with the settings it was trained under (issue: a run is its config)."""

from __future__ import annotations

import pytest

from emotune.errors import EmotuneError
from emotune.model.emotion_lm import EmotionLM
from emotune.model.lm_config import LMConfig, LoRAConfig
from emotune.train.config import TrainConfig
from tests.model.tiny import make_tiny_lm, random_examples

LABELS = ["neutral", "happy", "sad", "angry"]
SHAPES = {"egemaps": (88,)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def _model(tiny_dir, **train):
    cfg = LMConfig(backbone=str(tiny_dir), dtype="fp32", tokens=2, lora=LoRAConfig(r=4, dropout=0.0))
    tc = TrainConfig(**{"epochs": 2, "batch_size": 8, "lr": 1e-2, "bf16": False, "progress": False, **train})
    return EmotionLM(LABELS, list(SHAPES), SHAPES, cfg, tc, seed=0)


def test_a_checkpoint_is_not_resumed_under_other_settings(tiny_dir, tmp_path):
    train = random_examples(16, LABELS, SHAPES, seed=0)
    val = random_examples(8, LABELS, SHAPES, seed=1)
    out = tmp_path / "model"
    _model(tiny_dir).fit(train, val, out, run_hash="run-a")
    assert (out / "checkpoints" / "latest").exists()
    # Same settings: the finished checkpoint is picked up (no step is taken again).
    again = _model(tiny_dir).fit(train, val, out, run_hash="run-a")
    assert again["steps"] == 4
    with pytest.raises(EmotuneError, match=r"train\.lr 0\.01 → 0\.02") as err:
        _model(tiny_dir, lr=2e-2).fit(train, val, out, run_hash="run-a")
    assert "delete" in str(err.value) and "\n" not in str(err.value)
    # The run's own config/data identity is part of it: a different run may not adopt these weights.
    with pytest.raises(EmotuneError, match=r"run 'run-a' → 'run-b'"):
        _model(tiny_dir).fit(train, val, out, run_hash="run-b")
    # Settings that cannot change a step (the progress bar, checkpoint cadence) do not block a resume.
    _model(tiny_dir, progress=True, checkpoint_every=1).fit(train, val, out, run_hash="run-a")
