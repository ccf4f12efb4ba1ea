"""emotune's metric definitions equal scikit-learn's on random inputs (several shapes, missing classes)."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from emotune.evaluate.metrics import (apply_thresholds, average_precision_per_label, choose_thresholds,
                                      classification_metrics, confusion_matrix, expected_calibration_error,
                                      multilabel_metrics)

CASES = [(5, 3, 0), (40, 4, 1), (200, 8, 2), (300, 7, 3), (1000, 28, 4)]


def _random_single(n, c, seed, drop_gold=(), drop_pred=()):
    rng = np.random.default_rng(seed)
    gold_classes = [k for k in range(c) if k not in drop_gold]
    pred_classes = [k for k in range(c) if k not in drop_pred]
    y = rng.choice(gold_classes, n, p=np.linspace(1, 3, len(gold_classes)) / np.linspace(1, 3, len(gold_classes)).sum())
    p = np.where(rng.random(n) < 0.5, y, rng.choice(pred_classes, n))
    p = np.where(np.isin(p, pred_classes), p, pred_classes[0])
    return y, p


@pytest.mark.parametrize("n,c,seed", CASES)
@pytest.mark.parametrize("missing", ["none", "gold", "pred", "both"])
def test_single_label_metrics_equal_sklearn(n, c, seed, missing):
    drop_gold = (c - 1,) if missing in ("gold", "both") else ()
    drop_pred = (0,) if missing in ("pred", "both") else ()
    y, p = _random_single(n, c, seed, drop_gold, drop_pred)
    names = [f"c{k}" for k in range(c)]
    m = classification_metrics(y, p, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["wa"] == pytest.approx(skm.accuracy_score(y, p))
        assert m["ua"] == pytest.approx(skm.balanced_accuracy_score(y, p))
        assert m["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0))
        assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, p, average="weighted", zero_division=0))
        pr, rc, f1, sup = skm.precision_recall_fscore_support(y, p, labels=range(c), zero_division=0)
    np.testing.assert_allclose([m["per_class"][k]["precision"] for k in names], pr)
    np.testing.assert_allclose([m["per_class"][k]["recall"] for k in names], rc)
    np.testing.assert_allclose([m["per_class"][k]["f1"] for k in names], f1)
    assert [m["per_class"][k]["support"] for k in names] == list(sup)
    np.testing.assert_array_equal(m["confusion"], skm.confusion_matrix(y, p, labels=range(c)))


def test_invalid_answers_count_as_wrong_and_unlabelled_gold_is_skipped():
    y = np.array([0, 0, 1, 1, 2, 2, -1])
    p = np.array([0, -1, 1, -1, 2, 1, 0])
    m = classification_metrics(y, p, ["a", "b", "c"])
    assert m["n"] == 6
    assert m["wa"] == pytest.approx(3 / 6)
    # Same as scikit-learn with the invalid answer as an extra class that is never gold nor averaged.
    yy, pp = y[:6], np.where(p[:6] < 0, 3, p[:6])
    assert m["ua"] == pytest.approx(np.mean(skm.recall_score(yy, pp, labels=[0, 1, 2], average=None)))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(yy, pp, labels=[0, 1, 2], average="macro"))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(yy, pp, labels=[0, 1, 2], average="weighted"))
    assert m["invalid_by_gold"] == [1, 1, 0]
    assert np.asarray(m["confusion"]).sum() == 4


def test_confusion_ignores_out_of_range():
    assert confusion_matrix([0, 1, -1, 1], [0, -1, 1, 1], 2).tolist() == [[1, 0], [0, 1]]


def _random_multi(n, c, seed, empty_label=True):
    rng = np.random.default_rng(seed)
    T = (rng.random((n, c)) < rng.uniform(0.05, 0.5, c)).astype(int)
    if empty_label:
        T[:, 0] = 0  # a label with no gold positive
    S = np.clip(T * 0.3 + rng.random((n, c)) * 0.8, 0, 1)
    S[: n // 4] = np.round(S[: n // 4], 1)  # ties in the scores
    return T, S


@pytest.mark.parametrize("n,c,seed", [(10, 3, 0), (60, 5, 1), (400, 28, 2)])
def test_multilabel_metrics_equal_sklearn(n, c, seed):
    T, S = _random_multi(n, c, seed)
    P = apply_thresholds(S, 0.6)
    names = [f"l{k}" for k in range(c)]
    m = multilabel_metrics(T, P, names, scores=S)
    used = np.flatnonzero((T.sum(0) + P.sum(0)) > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["micro_f1"] == pytest.approx(skm.f1_score(T, P, average="micro", zero_division=0))
        assert m["macro_f1"] == pytest.approx(skm.f1_score(T, P, labels=used, average="macro", zero_division=0))
        assert m["samples_f1"] == pytest.approx(skm.f1_score(T, P, average="samples", zero_division=1.0))
        assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(T, P))
        assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(T, P))
        pos = np.flatnonzero(T.sum(0) > 0)
        ref_ap = skm.average_precision_score(T[:, pos], S[:, pos], average=None)
    ap = average_precision_per_label(T, S)
    assert np.isnan(ap[0])
    np.testing.assert_allclose(ap[pos], ref_ap)
    assert m["map"] == pytest.approx(np.mean(ref_ap))
    assert m["per_class"]["l0"]["ap"] is None


def test_thresholds_chosen_on_dev_improve_f1_and_global_is_one_value():
    rng = np.random.default_rng(5)
    T = (rng.random((300, 4)) < 0.3).astype(int)
    # Label 1's scores are shifted low: 0.5 is a bad threshold for it, per-label search should see that.
    S = np.clip(T * 0.4 + rng.random((300, 4)) * 0.5, 0, 1)
    S[:, 1] *= 0.5
    thr = choose_thresholds(T, S, "per_label")
    assert thr[1] < 0.4
    f1_default = skm.f1_score(T, apply_thresholds(S, 0.5), average="macro", zero_division=0)
    f1_tuned = skm.f1_score(T, apply_thresholds(S, thr), average="macro", zero_division=0)
    assert f1_tuned > f1_default
    g = choose_thresholds(T, S, "global")
    assert len(set(g)) == 1
    assert choose_thresholds(T, S, "fixed", default=0.3).tolist() == [0.3] * 4
    # A label without dev positives keeps the default.
    T[:, 2] = 0
    assert choose_thresholds(T, S, "per_label")[2] == 0.5


def test_at_least_one_label():
    S = np.array([[0.1, 0.3], [0.9, 0.2]])
    assert apply_thresholds(S, 0.5, at_least_one=True).tolist() == [[0, 1], [1, 0]]


def test_ece_hand_computed_and_extremes():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # 10 bins: bin (0.8,0.9]: conf 0.9, acc 0.5 (2 samples); bin (0.5,0.6]: 0.6 vs 1; bin (0.6,0.7]: 0.7 vs 1
    expected = 0.5 * 0.4 + 0.25 * 0.4 + 0.25 * 0.3
    assert expected_calibration_error(y, probs, n_bins=10) == pytest.approx(expected)
    onehot = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error([0, 1, 2, 1], onehot) == pytest.approx(0.0)
    assert expected_calibration_error([1, 2, 0, 0], onehot) == pytest.approx(1.0)


def test_multilabel_invalid_rows_score_worst():
    T = np.array([[0, 0], [1, 0], [1, 1]])
    P = np.array([[0, 0], [1, 0], [0, 0]])
    bad = np.array([True, False, True])
    m = multilabel_metrics(T, P, ["a", "b"], invalid=bad)
    assert m["subset_accuracy"] == pytest.approx(1 / 3)  # the empty-gold row does not match when invalid
    assert m["samples_f1"] == pytest.approx(1 / 3)
    assert m["hamming_loss"] == pytest.approx(4 / 6)
    assert m["micro_f1"] == pytest.approx(skm.f1_score(T, P, average="micro"))
