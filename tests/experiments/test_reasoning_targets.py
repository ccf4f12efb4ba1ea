"""Instruction data → reasoning targets: records join the manifest by sample id; training keeps only samples
that have a reasoning text; validation and test keep every labelled sample."""

import json

import pytest

from emotune.config import load_config
from emotune.data.sample import Sample, write_manifest
from emotune.data.splits import Fold
from emotune.errors import EmotuneError
from emotune.experiments.run import ensure_manifest, fold_data


def setup(tmp_path, records):
    samples = [Sample(id=f"s{i}", dataset="table", label=["angry", "sad"][i % 2], text=f"utterance {i}") for i in range(6)]
    write_manifest(tmp_path / "m.jsonl", "table", tmp_path, "mer", "all", samples)
    (tmp_path / "ins.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = load_config(None, [f"data.manifest={tmp_path}/m.jsonl", "data.label_set=mer", "data.target=reasoning",
                             f"data.instructions={tmp_path}/ins.jsonl", "model.inputs=[]", "features.extractors=[]"])
    return cfg, Fold("f", ["s0", "s1", "s2", "s3"], ["s4"], ["s5"])


def record(sid, kind, text):
    return {"id": f"{sid}/{kind}", "sample_id": sid, "kind": kind, "label": "angry",
            "conversations": [{"from": "human", "value": "Why?"}, {"from": "gpt", "value": text}]}


def test_reasoning_joins_by_sample_id(tmp_path):
    cfg, fold = setup(tmp_path, [record("s0", "reasoning", "Loud, fast speech: anger."),
                                 record("s1", "categorical", "sad"), record("s2", "reasoning", "A falling voice: sadness.")])
    data = fold_data(cfg, ensure_manifest(cfg), fold, {}, {})
    assert data.train.ids == ["s0", "s2"]  # s1 has only a categorical record, s3 nothing
    assert data.train.reasoning == ["Loud, fast speech: anger.", "A falling voice: sadness."]
    assert data.test.ids == ["s5"] and data.test.reasoning == [""]
    assert data.train.subset([1]).reasoning == ["A falling voice: sadness."]


def test_no_matching_reasoning_is_a_clear_error(tmp_path):
    cfg, fold = setup(tmp_path, [record("other", "reasoning", "x")])
    with pytest.raises(EmotuneError, match="no reasoning text matches"):
        fold_data(cfg, ensure_manifest(cfg), fold, {}, {})
