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
    assert "ece" in metrics and "lenient" not in metrics and "strict" not in metrics
    assert rows[0][1:] == NAMES
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_array_equal(counts, metrics["confusion"])
    assert counts.sum() == keep.sum()
    assert _png_ok(tmp_path / "confusion.png") and _png_ok(tmp_path / "per_class.png")


def test_generate_mode_headline_is_strict_and_lenient_is_nested(tmp_path):
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    preds = ["neutral", "happy", None, "angry", None, "sad", "sad", "angry"]
    raw = ["neutral", "Happy!", "hmm", "angry", "I cannot tell", "sad", "sad", "ANGRY"]
    m = write_evaluation(tmp_path, [str(i) for i in range(8)], NAMES, None, gold=y, raw_text=raw, preds=preds)
    recs, metrics, rows = _read(tmp_path)
    assert metrics["invalid"] == 2 and metrics["invalid_rate"] == pytest.approx(0.25)
    # Headline: every answer scored, an invalid one counted as wrong (what sklearn gives with a wrong class).
    as_wrong = np.array([0, 1, 9, 3, 9, 2, 2, 3])
    assert metrics["n"] == 8 and metrics["wa"] == pytest.approx(5 / 8)
    assert metrics["ua"] == pytest.approx(skm.recall_score(y, as_wrong, labels=[0, 1, 2, 3], average="macro"))
    assert metrics["weighted_f1"] == pytest.approx(skm.f1_score(y, as_wrong, labels=[0, 1, 2, 3], average="weighted"))
    assert metrics["per_class"]["sad"]["recall"] == pytest.approx(0.5)
    assert metrics["per_class"]["neutral"]["support"] == 2
    # Lenient: the valid answers only, nested, never the headline.
    assert metrics["lenient"]["n"] == 6 and metrics["lenient"]["wa"] == pytest.approx(5 / 6)
    assert metrics["lenient"]["ua"] > metrics["ua"]
    assert metrics["lenient"]["per_class"]["sad"]["recall"] == pytest.approx(1.0)
    assert "strict" not in metrics
    assert metrics["invalid_by_gold"] == [1, 0, 1, 0]
    assert recs[2]["pred"] is None and recs[2]["raw"] == "hmm" and recs[2]["scores"] is None
    assert rows[0][-1] == "invalid" and [int(r[-1]) for r in rows[1:]] == [1, 0, 1, 0]
    assert sum(int(v) for r in rows[1:] for v in r[1:]) == 8
    assert m == metrics


def test_headline_metrics_reads_files_of_the_old_layout(tmp_path):
    """Older generate-mode files held the lenient figures at top level and the strict ones under "strict"."""
    from emotune.evaluate.writer import headline_metrics

    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    preds = ["neutral", "happy", None, "angry", None, "sad", "sad", "angry"]
    new = write_evaluation(tmp_path, [str(i) for i in range(8)], NAMES, None, gold=y, preds=preds)
    keys = ("n", "wa", "ua", "macro_f1", "weighted_f1", "per_class")
    old = {k: v for k, v in new.items() if k != "lenient"} | {k: new["lenient"][k] for k in keys}
    old["strict"] = {k: new[k] for k in keys}
    assert old["wa"] == pytest.approx(5 / 6)  # what an old file said at top level
    assert headline_metrics(old) == new
    assert headline_metrics(new) is new
    score = write_evaluation(tmp_path / "s", ["a", "b"], NAMES, np.eye(4)[:2], gold=[0, 1])
    assert headline_metrics(score) is score


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
    assert g["invalid"] == n - 3 and g["n"] == n and g["lenient"]["n"] == 3
    assert g["subset_accuracy"] <= g["lenient"]["subset_accuracy"]
    valid = np.array([r is not None for r in gen])
    as_given = np.array([[NAMES.index(c) in [NAMES.index(x) for x in (r or [])] for c in NAMES] for r in gen], int)
    assert g["micro_f1"] == pytest.approx(skm.f1_score(T, as_given, average="micro", zero_division=0))
    assert g["lenient"]["micro_f1"] == pytest.approx(skm.f1_score(T[valid], as_given[valid], average="micro",
                                                                  zero_division=0))
    assert g["subset_accuracy"] == pytest.approx(((T == as_given).all(1) & valid).mean())
    assert _png_ok(tmp_path / "gen" / "confusion.png")


def test_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="rows"):
        write_evaluation(tmp_path, ["a", "b"], NAMES, np.full((3, 4), 0.25), gold=[0, 1])
    with pytest.raises(ValueError, match="not one of the labels"):
        write_evaluation(tmp_path, ["a"], NAMES, None, gold=[0], preds=["bored"])


def test_report_shows_strict_figures_for_new_and_old_generate_files(tmp_path):
    """The report's headline table is the strict one whatever the file's age; the lenient ones are labelled."""
    from emotune.evaluate.report import report

    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    preds = ["neutral", "happy", None, "angry", None, "sad", "sad", "angry"]
    for layout in ("new", "old"):
        run = tmp_path / layout
        m = write_evaluation(run / "eval_test", [str(i) for i in range(8)], NAMES, None, gold=y, preds=preds)
        if layout == "old":  # what an earlier version wrote: lenient at top level, strict nested
            keys = ("n", "wa", "ua", "macro_f1", "weighted_f1", "per_class")
            old = {k: v for k, v in m.items() if k != "lenient"} | {k: m["lenient"][k] for k in keys}
            old["strict"] = {k: m[k] for k in keys}
            (run / "eval_test" / "metrics.json").write_text(json.dumps(old))
        (run / "config.yaml").write_text("name: x\n")
        md, _ = report(run)
        text = md.read_text()
        assert "| wa | 0.625 |" in text  # 5 of 8, the invalid answers wrong
        assert "2 invalid (25.0%), counted as wrong" in text and "On the 6 valid answers only: wa 0.833" in text
        assert "| invalid | 2 |" in text
        # per class, strict: one of sad's 2 answers was unreadable (recall 1/2; lenient would say 1/1)
        assert "| sad | 0.500 | 0.500 | 0.500 | 2 |" in text
