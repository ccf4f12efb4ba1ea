"""`emotune eval RUN --fold NAME`: one training, several official test sets (MER2023's test1/2/3)."""

from __future__ import annotations

import json

import pytest
import yaml

from emotune.errors import EmotuneError
from emotune.experiments.run import eval_run, train
from tests.experiments.test_cross_corpus import corpus


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("other_fold")
    root = corpus(tmp / "c", "synthetic", ["happy", "sad", "angry"], speakers=4, per=4, seed=5)
    # speakers 0-1 train, 2 test1, 3 test2: a split column like MER2023's label table
    lines = (root / "t.csv").read_text().splitlines()
    split = {"s0": "train", "s1": "train", "s2": "test1", "s3": "test2"}
    (root / "t.csv").write_text("\n".join([lines[0] + ",part"] + [f"{x},{split[x.split(',')[-1]]}" for x in lines[1:]]) + "\n")
    recipe = {"name": "of", "run_dir": str(tmp / "run"),
              "data": {"dataset": "table", "root": str(root), "manifest": str(tmp / "m.jsonl"), "protocol": "official",
                       "fold": 0, "options": {"file": "t.csv", "label": "label", "audio": "audio", "split": "part",
                                              "label_set": "synthetic"}},
              "features": {"cache_dir": str(tmp / "cache"), "extractors": ["egemaps"]},
              "model": {"kind": "baseline_lr", "inputs": ["egemaps"], "baseline": {"C_grid": [0.1, 1.0]}}}
    (tmp / "r.yaml").write_text(yaml.safe_dump(recipe))
    return train(str(tmp / "r.yaml"), [])


def test_another_official_test_set_is_scored_by_the_same_model(run):
    assert json.loads((run / "fold.json").read_text())["name"] == "official_test1"
    m = eval_run(str(run), fold_name="official_test2")
    rows = [json.loads(x) for x in (run / "eval_test_official_test2" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["id"].endswith(("_3_0", "_3_1", "_3_2", "_3_3")) for r in rows)  # speaker 3
    assert m["ua"] > 0.6
    # the run's own test set is untouched
    assert len((run / "eval_test" / "predictions.jsonl").read_text().splitlines()) == 12


def test_a_fold_with_another_training_side_is_refused(run):
    with pytest.raises(EmotuneError, match="folds are official_test1, official_test2"):
        eval_run(str(run), fold_name="fold3")
    # a protocol whose folds train on other samples: scoring its test side could read training samples
    with pytest.raises(EmotuneError, match="training or validation side differs"):
        eval_run(str(run), overrides=["data.protocol=stratified_kfold", "data.folds=2"], fold_name="fold1")
