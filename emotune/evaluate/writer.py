"""Write one evaluation to disk: predictions.jsonl, metrics.json, confusion.csv, confusion.png, per_class.png.

The same files for every model kind and mode, so runs can be compared and re-read:
- predictions.jsonl: one object per sample {id, gold, pred, scores {class: p} | null, raw | null};
  `pred` is null for an invalid generated answer.
- metrics.json: the metrics of `emotune.evaluate.metrics`, plus `invalid` and `invalid_rate`.
  The headline metrics are always the strict ones: when predictions come from generation (`preds`
  given) every invalid answer counts as wrong, and `lenient` holds the same metrics on the valid
  answers only (never the figure to report: a model that answers only when sure would look better).
  Files written before this layout had it the other way round (lenient at top level, `strict` nested):
  read them through `headline_metrics`.
- confusion.csv / confusion.png: rows gold, columns predicted (+ an `invalid` column in generate mode).
  Multi-label: entry [i, j] counts samples with gold label i that were given label j (diagonal = hits).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from emotune.evaluate import metrics as M
from emotune.evaluate import plots


def _class_index(value, names: list[str]) -> int:
    """A prediction or gold label (index, name, None, -1) → class index, -1 for none/invalid."""
    if value is None:
        return -1
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"'{value}' is not one of the labels {names}")
        return names.index(value)
    return int(value)


def _multi_row(value, names: list[str]) -> Optional[np.ndarray]:
    """A multi-label prediction (list of names / indices, or a 0/1 row; None = invalid) → 0/1 row."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim == 1 and len(arr) == len(names) and arr.dtype.kind in "biuf":
        return (arr > 0.5).astype(np.int64)
    row = np.zeros(len(names), dtype=np.int64)
    for v in value:
        row[_class_index(v, names)] = 1
    return row


def _write_confusion_csv(path: Path, counts: np.ndarray, rows: list[str], cols: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["gold \\ predicted", *cols])
        for name, row in zip(rows, counts):
            w.writerow([name, *[int(v) for v in row]])


def _single(names, probs, gold, preds, ece_bins):
    y = np.array([_class_index(g, names) for g in gold], dtype=int)
    generated = preds is not None
    if generated:
        p = np.array([_class_index(v, names) for v in preds], dtype=int)
    elif probs is not None:
        p = probs.argmax(axis=1)
    else:
        raise ValueError("write_evaluation needs probs or preds")
    labelled = y >= 0
    invalid = (p < 0) & labelled
    strict = M.classification_metrics(y, p, names)  # every labelled sample; an invalid answer is wrong
    invalid_by_gold = strict.pop("invalid_by_gold")
    out = {"task": "single", "labels": names, **strict,
           "n_scored": int(labelled.sum()), "n_unlabelled": int((~labelled).sum()),
           "invalid": int(invalid.sum()), "invalid_rate": float(invalid.sum() / max(1, labelled.sum()))}
    if probs is not None:
        out["ece"] = M.expected_calibration_error(y, probs, ece_bins)
    counts = np.asarray(strict["confusion"])  # valid answers only; the invalid ones get their own column
    cols = list(names)
    if generated:
        out["invalid_by_gold"] = invalid_by_gold
        lenient = M.classification_metrics(y[~invalid], p[~invalid], names)
        out["lenient"] = {k: lenient[k] for k in ("n", "wa", "ua", "macro_f1", "weighted_f1", "per_class")}
        counts = np.column_stack([counts, invalid_by_gold])
        cols.append("invalid")
    pred_out = [None if v < 0 else names[v] for v in p]
    gold_out = [None if v < 0 else names[v] for v in y]
    return out, counts, cols, gold_out, pred_out


def _multi(names, probs, gold, preds, thresholds):
    C = len(names)
    T = (np.asarray(gold, dtype=float) > 0.5).astype(np.int64)
    generated = preds is not None
    if generated:
        rows = [_multi_row(v, names) for v in preds]
        invalid = np.array([r is None for r in rows], dtype=bool)
        P = np.stack([np.zeros(C, dtype=np.int64) if r is None else r for r in rows]) if rows else np.zeros((0, C), int)
    elif probs is not None:
        thr = 0.5 if thresholds is None else thresholds
        P = M.apply_thresholds(probs, thr)
        invalid = np.zeros(len(T), dtype=bool)
    else:
        raise ValueError("write_evaluation needs probs or preds")
    strict = M.multilabel_metrics(T, P, names, scores=probs, invalid=invalid)  # an invalid answer is wrong
    out = {"task": "multi", "labels": names, **strict,
           "invalid": int(invalid.sum()), "invalid_rate": float(invalid.mean()) if len(T) else 0.0}
    if not generated:
        out["thresholds"] = np.broadcast_to(np.asarray(0.5 if thresholds is None else thresholds, float), (C,)).tolist()
    counts = T.T @ P  # [gold label, predicted label]
    cols = list(names)
    if generated:
        lenient = M.multilabel_metrics(T[~invalid], P[~invalid], names,
                                       scores=None if probs is None else probs[~invalid])
        out["lenient"] = {k: lenient[k] for k in ("n", "micro_f1", "macro_f1", "samples_f1", "subset_accuracy",
                                                  "hamming_loss", "per_class", "map") if k in lenient}
        counts = np.column_stack([counts, T[invalid].sum(axis=0)])
        cols.append("invalid")
    pred_out = [None if bad else [names[c] for c in np.flatnonzero(row)] for row, bad in zip(P, invalid)]
    gold_out = [[names[c] for c in np.flatnonzero(row)] for row in T]
    return out, counts, cols, gold_out, pred_out


def write_evaluation(out_dir, ids: Sequence[str], label_names: Sequence[str], probs: Optional[np.ndarray],
                     gold, raw_text: Optional[Sequence[Optional[str]]] = None, preds: Optional[Sequence] = None,
                     multi: bool = False, thresholds=None, ece_bins: int = 15) -> dict:
    """Score predictions against `gold` and write the evaluation files; returns the metrics dict.

    gold: [N] class indices (-1 = no label) or names for single-label; [N, C] 0/1 for multi-label.
    probs: [N, C] class probabilities (single) or independent label scores (multi); may be None when
      `preds` is given. preds: generated answers already parsed (names / indices, None = invalid);
      without it predictions are argmax(probs) or, multi-label, probs ≥ thresholds (scalar or [C]).
    ece_bins: bins of the calibration error (single-label, from probs).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(label_names)
    n = len(ids)
    probs = None if probs is None else np.asarray(probs, dtype=float)
    for what, value in (("probs", probs), ("gold", gold), ("preds", preds), ("raw_text", raw_text)):
        if value is not None and len(value) != n:
            raise ValueError(f"{what} has {len(value)} rows for {n} ids")
    if probs is not None and probs.shape[1] != len(names):
        raise ValueError(f"probs has {probs.shape[1]} columns for {len(names)} labels")

    if multi:
        result, counts, cols, gold_out, pred_out = _multi(names, probs, gold, preds, thresholds)
    else:
        result, counts, cols, gold_out, pred_out = _single(names, probs, gold, preds, ece_bins)

    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        for k, sample_id in enumerate(ids):
            rec = {"id": sample_id, "gold": gold_out[k], "pred": pred_out[k],
                   "scores": None if probs is None else {c: round(float(v), 6) for c, v in zip(names, probs[k])},
                   "raw": None if raw_text is None else raw_text[k]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    _write_confusion_csv(out_dir / "confusion.csv", counts, names, cols)
    title = "multi-label: gold label vs labels given" if multi else "confusion (row-normalised, counts)"
    row_totals = (np.asarray(gold, dtype=float) > 0.5).sum(axis=0) if multi else None
    plots.confusion_heatmap(counts, names, cols, out_dir / "confusion.png", title=title, row_totals=row_totals)
    # The chart shows the headline (strict) figures: a class whose answers are often unreadable must not
    # look good.
    title = "per class (invalid answers counted as wrong)" if "lenient" in result else ""
    plots.per_class_bars(result["per_class"], out_dir / "per_class.png", title=title)
    return result


def headline_metrics(metrics: dict) -> dict:
    """The metrics of a metrics.json of any version, with the strict figures at top level.

    Files written before the strict headline hold the lenient figures (valid answers only) at top level
    and the strict ones under "strict": those are swapped, so a reader never takes the lenient figures
    for the ones to report. Files of this version come back unchanged.
    """
    if "strict" not in metrics or "lenient" in metrics:
        return metrics
    strict = metrics["strict"]
    lenient = {k: metrics[k] for k in strict if k in metrics}
    rest = {k: v for k, v in metrics.items() if k != "strict"}
    return {**rest, **strict, "lenient": lenient}
