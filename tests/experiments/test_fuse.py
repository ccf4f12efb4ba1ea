"""The `fusion` model: two CV runs pooled per fold, the weight chosen on validation only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotune.errors import EmotuneError
from emotune.evaluate.metrics import classification_metrics
from emotune.evaluate.writer import write_evaluation
from emotune.experiments.fuse import fuse, pool

NAMES = ["neutral", "happy", "sad", "angry"]


def _probs(gold: np.ndarray, good: set[int], rng) -> np.ndarray:
    """A model that is right (confidently) on the classes in `good` and guesses elsewhere."""
    p = rng.dirichlet(np.ones(len(NAMES)), size=len(gold))
    for i, g in enumerate(gold):
        if g in good:
            p[i] = 0.05
            p[i, g] = 0.85
    return p


def _cv(root, name, good_val, good_test, folds=2, seed=0):
    rng = np.random.default_rng(seed)
    for k in range(folds):
        d = root / name / f"fold{k}"
        gold = {s: np.tile(np.arange(4), 10) for s in ("val", "test")}
        for side, good in (("val", good_val), ("test", good_test)):
            ids = [f"{side}{k}_{i}" for i in range(len(gold[side]))]
            write_evaluation(d / f"eval_{side}", ids, NAMES, _probs(gold[side], good, rng), gold=gold[side])
        (d / "fold.json").write_text(json.dumps({"name": f"fold{k}", "train": ["t"], "val": ["v"], "test": [str(k)]}))
        (d / "DONE").write_text("x\n")
    return root / name


def test_fusion_beats_both_parts_when_they_are_right_on_different_classes(tmp_path):
    a = _cv(tmp_path, "a", {0, 1}, {0, 1}, seed=1)
    b = _cv(tmp_path, "b", {2, 3}, {2, 3}, seed=2)
    summary = fuse(str(a), str(b), str(tmp_path / "fused"))
    assert summary["ua"]["mean"] > 0.9  # each part alone is right on half the classes: UA ≈ 0.6
    # Per-sample predictions of every fold, in one file: the metrics can be recomputed from it.
    rows = [json.loads(x) for x in (tmp_path / "fused" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 80 and {r["fold"] for r in rows} == {"fold0", "fold1"}
    gold = [NAMES.index(r["gold"]) for r in rows]
    pred = [NAMES.index(r["pred"]) for r in rows]
    assert classification_metrics(np.array(gold), np.array(pred), NAMES)["ua"] == pytest.approx(summary["pooled"]["ua"])


def test_the_weight_is_chosen_on_validation_never_on_test(tmp_path):
    # On validation only A is ever right; on test only B is: a test-tuned weight would be 0, ours leans to A.
    a = _cv(tmp_path, "a", {0, 1, 2, 3}, set(), seed=3)
    b = _cv(tmp_path, "b", set(), {0, 1, 2, 3}, seed=4)
    fuse(str(a), str(b), str(tmp_path / "fused"))
    chosen = json.loads((tmp_path / "fused" / "fold0" / "fusion.json").read_text())
    w = chosen["weight_a"]
    assert w > 0.5 and chosen["val_ua_by_weight"][str(w)] == max(chosen["val_ua_by_weight"].values())
    read = lambda p: np.array([[r["scores"][n] for n in NAMES] for r in map(json.loads, p.read_text().splitlines())])
    fused = read(tmp_path / "fused" / "fold0" / "eval_test" / "predictions.jsonl")
    expect = pool(read(a / "fold0" / "eval_test" / "predictions.jsonl"), read(b / "fold0" / "eval_test" / "predictions.jsonl"), w)
    np.testing.assert_allclose(fused, expect, atol=2e-6)


def test_pool_is_a_distribution_and_its_endpoints_are_the_parts():
    rng = np.random.default_rng(0)
    pa, pb = rng.dirichlet(np.ones(4), 5), rng.dirichlet(np.ones(4), 5)
    np.testing.assert_allclose(pool(pa, pb, 0.3).sum(1), 1.0)
    np.testing.assert_allclose(pool(pa, pb, 1.0), pa, atol=1e-12)
    np.testing.assert_allclose(pool(pa, pb, 0.0), pb, atol=1e-12)


def test_runs_over_different_folds_are_refused(tmp_path):
    a = _cv(tmp_path, "a", {0}, {0}, folds=2)
    b = _cv(tmp_path, "b", {0}, {0}, folds=3)
    with pytest.raises(EmotuneError, match="different folds"):
        fuse(str(a), str(b), str(tmp_path / "fused"))
