"""write_evaluation: the files exist, agree with each other, and invalid answers are counted, not mapped."""

import csv
import json

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn import metrics as skm

from emotune.evaluate.writer import write_evaluation

NAMES = ["neutral", "happy", "sad", "angry"]


def _read(out):
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "confusion.csv") as f:
        rows = list(csv.reader(f))
    return preds, metrics, rows


def _png_ok(path):
    img = imread(path)
    return img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_score_mode_files_are_consistent(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    probs = rng.dirichlet(np.ones(4), n)
    y = rng.integers(0, 4, n)
    y[:3] = -1  # samples without a single label are listed but not scored
    ids = [f"s{i}" for i in range(n)]
    m = write_evaluation(tmp_path, ids, NAMES, probs, gold=y)
    preds, metrics, rows = _read(tmp_path)
    assert metrics == json.loads(json.dumps(m))
    assert [p["id"] for p in preds] == ids
    assert preds[0]["gold"] is None and preds[5]["gold"] == NAMES[y[5]]
    assert all(p["pred"] == NAMES[int(np.argmax(probs[i]))] for i, p in enumerate(preds))
    assert sum(preds[7]["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    keep = y >= 0
    assert metrics["n"] == keep.sum() and metrics["n_unlabelled"] == 3 and metrics["invalid"] == 0
    assert metrics["ua"] == pytest.approx(skm.balanced_accuracy_score(y[keep], probs[keep].argmax(1)))
    assert "ece" in metrics and "strict" not in metrics
    assert rows[0][1:] == NAMES
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_array_equal(counts, metrics["confusion"])
    assert counts.sum() == keep.sum()
    assert _png_ok(tmp_path / "confusion.png") and _png_ok(tmp_path / "per_class.png")


def test_generate_mode_counts_invalid_and_reports_strict(tmp_path):
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    preds = ["neutral", "happy", None, "angry", None, "sad", "sad", "angry"]
    raw = ["neutral", "Happy!", "hmm", "angry", "I cannot tell", "sad", "sad", "ANGRY"]
    m = write_evaluation(tmp_path, [str(i) for i in range(8)], NAMES, None, gold=y, raw_text=raw, preds=preds)
    recs, metrics, rows = _read(tmp_path)
    assert metrics["invalid"] == 2 and metrics["invalid_rate"] == pytest.approx(0.25)
    assert metrics["n"] == 6 and metrics["wa"] == pytest.approx(5 / 6)  # on the valid answers
    assert metrics["strict"]["n"] == 8 and metrics["strict"]["wa"] == pytest.approx(5 / 8)
    assert metrics["strict"]["ua"] < metrics["ua"]
    assert metrics["invalid_by_gold"] == [1, 0, 1, 0]
    assert recs[2]["pred"] is None and recs[2]["raw"] == "hmm" and recs[2]["scores"] is None
    assert rows[0][-1] == "invalid" and [int(r[-1]) for r in rows[1:]] == [1, 0, 1, 0]
    assert sum(int(v) for r in rows[1:] for v in r[1:]) == 8
    assert m["strict"]["per_class"]["sad"]["recall"] == pytest.approx(0.5)


def test_multi_label_score_mode_and_generate_mode(tmp_path):
    rng = np.random.default_rng(1)
    n = 50
    T = (rng.random((n, 4)) < 0.35).astype(int)
    S = np.clip(T * 0.4 + rng.random((n, 4)) * 0.6, 0, 1)
    thr = [0.5, 0.6, 0.4, 0.5]
    m = write_evaluation(tmp_path / "score", [f"m{i}" for i in range(n)], NAMES, S, gold=T, multi=True, thresholds=thr)
    P = (S >= np.array(thr)).astype(int)
    assert m["micro_f1"] == pytest.approx(skm.f1_score(T, P, average="micro"))
    assert m["thresholds"] == thr and "map" in m
    recs, metrics, rows = _read(tmp_path / "score")
    assert recs[0]["gold"] == [NAMES[c] for c in np.flatnonzero(T[0])]
    assert recs[0]["pred"] == [NAMES[c] for c in np.flatnonzero(P[0])]
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_array_equal(np.diag(counts), (T & P).sum(0))  # diagonal = hits per label

    gen = [["happy"], None, ["sad", "angry"], []] + [None] * (n - 4)
    g = write_evaluation(tmp_path / "gen", [f"m{i}" for i in range(n)], NAMES, None, gold=T, multi=True, preds=gen)
    assert g["invalid"] == n - 3 and g["n"] == 3 and g["strict"]["n"] == n
    assert g["strict"]["subset_accuracy"] <= g["subset_accuracy"]
    assert _png_ok(tmp_path / "gen" / "confusion.png")


def test_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="rows"):
        write_evaluation(tmp_path, ["a", "b"], NAMES, np.full((3, 4), 0.25), gold=[0, 1])
    with pytest.raises(ValueError, match="not one of the labels"):
        write_evaluation(tmp_path, ["a"], NAMES, None, gold=[0], preds=["bored"])
