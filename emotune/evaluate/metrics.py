"""Every metric emotune reports, defined once here (numpy only) and checked against scikit-learn in tests.

Single-label (`y_true`, `y_pred` are class indices; `y_pred == -1` is an invalid generated answer):
- WA  = accuracy over all scored samples (an invalid answer counts as wrong).
- UA  = mean per-class recall over the classes present in the gold labels (= balanced accuracy).
- macro-F1 = mean F1 over the classes present in the gold labels or among the valid predictions
  (scikit-learn's default label set); weighted-F1 = F1 weighted by gold support.
- per class: precision, recall, F1, support for every class of the label set (0 where undefined).
- confusion: [C, C] counts, rows = gold, columns = prediction (invalid answers are counted apart).

Multi-label (`Y_true`, `Y_pred` are [N, C] 0/1):
- micro-F1 over all (sample, label) cells; macro-F1 over the labels present in gold or predictions;
  samples-F1 = mean per-sample F1, a sample with no gold and no predicted label scores 1;
- subset accuracy (exact set match), Hamming loss (fraction of wrong cells);
- mAP = mean average precision over the labels with at least one gold positive (from scores).
Thresholds turning scores into labels are chosen on dev data: `choose_thresholds`.

Calibration: ECE = Σ_bins (n_b / N) |accuracy_b − confidence_b| over equal-width bins of the top-class
probability.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[C, C] counts (rows gold, columns prediction); pairs with a label outside 0..C-1 are left out."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    ok = (y_true >= 0) & (y_true < n_classes) & (y_pred >= 0) & (y_pred < n_classes)
    return np.bincount(y_true[ok] * n_classes + y_pred[ok], minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _safe_div(2 * tp, 2 * tp + fp + fn)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> dict:
    """Single-label metrics. Samples with gold -1 (no label) are skipped; prediction -1 = invalid (wrong)."""
    names = list(label_names)
    C = len(names)
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    labelled = y_true >= 0
    y_true, y_pred = y_true[labelled], y_pred[labelled]
    n = len(y_true)
    cm = confusion_matrix(y_true, y_pred, C)
    invalid = y_pred < 0
    tp = np.diag(cm).astype(float)
    support = np.bincount(y_true, minlength=C)[:C].astype(float)  # includes samples answered invalidly
    predicted = cm.sum(axis=0).astype(float)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _f1(tp, predicted - tp, support - tp)
    in_gold = support > 0
    in_macro = in_gold | (predicted > 0)
    return {
        "n": int(n),
        "wa": float(tp.sum() / n) if n else 0.0,
        "ua": float(recall[in_gold].mean()) if in_gold.any() else 0.0,
        "macro_f1": float(f1[in_macro].mean()) if in_macro.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
        "per_class": {
            name: {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                   "support": int(support[c])}
            for c, name in enumerate(names)
        },
        "confusion": cm.tolist(),
        "invalid_by_gold": np.bincount(y_true[invalid], minlength=C)[:C].tolist(),
    }


def multilabel_metrics(Y_true: np.ndarray, Y_pred: np.ndarray, label_names: Sequence[str],
                       scores: Optional[np.ndarray] = None, invalid: Optional[np.ndarray] = None) -> dict:
    """Multi-label metrics from 0/1 matrices [N, C]; mAP too when `scores` [N, C] is given.

    `invalid` [N] bool marks unreadable answers: they name no label (each gold label a miss in the
    label-wise counts) and score worst on the per-sample measures (F1 0, no exact match, every cell wrong).
    """
    T = np.asarray(Y_true) > 0.5
    P = np.asarray(Y_pred) > 0.5
    if T.shape != P.shape:
        raise ValueError(f"Y_true {T.shape} and Y_pred {P.shape} differ in shape")
    bad = np.zeros(len(T), dtype=bool) if invalid is None else np.asarray(invalid, dtype=bool)
    P = P & ~bad[:, None]
    tp = (T & P).sum(axis=0).astype(float)
    fp = (~T & P).sum(axis=0).astype(float)
    fn = (T & ~P).sum(axis=0).astype(float)
    f1 = _f1(tp, fp, fn)
    in_macro = (T.sum(axis=0) + P.sum(axis=0)) > 0
    s_tp, s_fp, s_fn = (T & P).sum(1), (~T & P).sum(1), (T & ~P).sum(1)
    s_den = 2 * s_tp + s_fp + s_fn
    samples_f1 = np.where(s_den > 0, _safe_div(2 * s_tp, s_den), 1.0) * ~bad
    exact = (T == P).all(axis=1) & ~bad
    wrong_cells = np.where(bad[:, None], True, T != P)
    out = {
        "n": int(len(T)),
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "macro_f1": float(f1[in_macro].mean()) if in_macro.any() else 0.0,
        "samples_f1": float(samples_f1.mean()) if len(T) else 0.0,
        "subset_accuracy": float(exact.mean()) if len(T) else 0.0,
        "hamming_loss": float(wrong_cells.mean()) if T.size else 0.0,
        "per_class": {
            name: {"precision": float(_safe_div(tp[c], tp[c] + fp[c])), "recall": float(_safe_div(tp[c], tp[c] + fn[c])),
                   "f1": float(f1[c]), "support": int(tp[c] + fn[c])}
            for c, name in enumerate(label_names)
        },
    }
    if scores is not None:
        ap = average_precision_per_label(T, scores)
        out["map"] = float(np.nanmean(ap)) if np.isfinite(ap).any() else 0.0
        for c, name in enumerate(label_names):
            out["per_class"][name]["ap"] = None if np.isnan(ap[c]) else float(ap[c])
    return out


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """AP of one label: Σ_k (R_k − R_{k−1}) P_k over the distinct score thresholds (ties grouped)."""
    y = np.asarray(y_true) > 0.5
    s = np.asarray(score, dtype=float)
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]  # evaluate only where the threshold changes
    tps = np.cumsum(y)[last_of_tie]
    preds = (np.arange(len(y)) + 1)[last_of_tie]
    precision = tps / preds
    recall = tps / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision_per_label(Y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[C] AP per label; NaN for a label with no gold positive (left out of mAP)."""
    Y_true, scores = np.asarray(Y_true), np.asarray(scores, dtype=float)
    return np.array([average_precision(Y_true[:, c], scores[:, c]) for c in range(Y_true.shape[1])])


def selection_score(target: str, gold, probs: np.ndarray, names: Sequence[str]) -> float:
    """What model selection maximises on validation, for every model kind: mAP for multi-label (gold
    [N, C] 0/1), else UA of the top class (gold [N] class index, -1 = no label)."""
    if target == "multi":
        ap = average_precision_per_label(np.asarray(gold), probs)
        return float(np.nanmean(ap)) if np.isfinite(ap).any() else 0.0
    return classification_metrics(gold, np.asarray(probs).argmax(axis=1), names)["ua"]


def apply_thresholds(scores: np.ndarray, thresholds, at_least_one: bool = False) -> np.ndarray:
    """[N, C] 0/1 from scores ≥ threshold (a scalar or one per label). `at_least_one`: empty rows get their top label."""
    scores = np.asarray(scores, dtype=float)
    pred = (scores >= np.asarray(thresholds, dtype=float)).astype(np.int64)
    if at_least_one and len(scores):
        empty = pred.sum(axis=1) == 0
        pred[empty, scores[empty].argmax(axis=1)] = 1
    return pred


def choose_thresholds(Y_dev: np.ndarray, scores_dev: np.ndarray, policy: str = "per_label",
                      grid: Sequence[float] = THRESHOLD_GRID, default: float = 0.5) -> np.ndarray:
    """Decision thresholds [C] picked on dev data (never on the test side).

    - "per_label": each label's threshold maximises that label's F1 on dev (ties → the value nearest
      `default`); a label with no dev positive keeps `default`.
    - "global": one threshold for all labels, maximising micro-F1 on dev.
    - "fixed": `default` everywhere.
    """
    T = np.asarray(Y_dev) > 0.5
    S = np.asarray(scores_dev, dtype=float)
    C = T.shape[1]
    grid = np.asarray(grid, dtype=float)
    # Prefer the grid value closest to the default among equal scores: stable and unsurprising.
    order = np.argsort(np.abs(grid - default), kind="mergesort")
    if policy == "fixed":
        return np.full(C, float(default))
    if policy == "global":
        f1s = [multilabel_micro_f1(T, S >= grid[g]) for g in order]
        return np.full(C, float(grid[order[int(np.argmax(f1s))]]))
    if policy == "per_label":
        out = np.full(C, float(default))
        for c in range(C):
            if not T[:, c].any():
                continue
            f1s = [float(_f1(*_counts(T[:, c], S[:, c] >= grid[g]))) for g in order]
            out[c] = grid[order[int(np.argmax(f1s))]]
        return out
    raise ValueError(f"threshold policy must be per_label, global or fixed, got {policy!r}")


def _counts(t: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    return float((t & p).sum()), float((~t & p).sum()), float((t & ~p).sum())


def multilabel_micro_f1(T: np.ndarray, P: np.ndarray) -> float:
    return float(_f1(*_counts(np.asarray(T) > 0.5, np.asarray(P) > 0.5)))


def expected_calibration_error(y_true: Sequence[int], probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-class probability over `n_bins` equal-width bins (samples with gold -1 skipped)."""
    y = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=float)
    keep = y >= 0
    y, probs = y[keep], probs[keep]
    if len(y) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    # Bin b holds confidences in (b/n, (b+1)/n]; confidence 0 goes to the first bin.
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)
