"""Late fusion of two cross-validated models (`emotune fuse CV_A CV_B`): the `fusion` model.

Per fold, the two models' class probabilities are pooled log-linearly,
    log p = w · log p_A + (1 − w) · log p_B   (renormalised),
with the weight w chosen on the fold's validation side (the same training-side speakers both models
were selected on), never on its test side; the test side is then read once with that w. A fold's
validation predictions come from `eval_val/` (written by `emotune eval RUN --split val` when absent).

The result is a CV folder like any other (fold folders with eval_test/, summary.json, predictions.jsonl)
and is reported as its own model, `fusion`, never as either of its parts.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from emotune.errors import EmotuneError
from emotune.experiments.run import log

WEIGHTS = tuple(round(0.1 * k, 1) for k in range(11))  # w = 0 is model B alone, w = 1 model A alone
FLOOR = 1e-6  # probabilities are clipped here before the log: one confident zero must not veto a class


def _fold_dirs(cv_dir: Path) -> dict[str, Path]:
    dirs = {d.name: d for d in sorted(cv_dir.iterdir()) if (d / "DONE").exists()} if cv_dir.is_dir() else {}
    if not dirs:
        raise EmotuneError(f"{cv_dir}: no finished fold folders (a CV directory made by `emotune cv`)")
    return dirs


def read_predictions(path: Path, names: list[str] | None = None) -> tuple[list[str], list, np.ndarray, list[str]]:
    """(ids, gold labels, [N, C] probabilities, label names) of a predictions.jsonl with scores."""
    ids, gold, rows = [], [], []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        rec = json.loads(line)
        if not rec.get("scores"):
            raise EmotuneError(f"{path}:{line_no}: no class scores (a generated-answer evaluation cannot be fused)")
        names = names or list(rec["scores"])
        ids.append(rec["id"])
        gold.append(rec["gold"])
        rows.append([rec["scores"][n] for n in names])
    return ids, gold, np.asarray(rows, dtype=np.float64), names


def pool(pa: np.ndarray, pb: np.ndarray, w: float) -> np.ndarray:
    logp = w * np.log(np.clip(pa, FLOOR, 1.0)) + (1.0 - w) * np.log(np.clip(pb, FLOOR, 1.0))
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def choose_weight(pa: np.ndarray, pb: np.ndarray, gold: np.ndarray, names: list[str]) -> tuple[float, dict]:
    """The w of WEIGHTS with the best validation UA (ties: the w nearest 0.5, an even mix); all scores."""
    from emotune.evaluate.metrics import classification_metrics

    scores = {w: classification_metrics(gold, pool(pa, pb, w).argmax(1), names)["ua"] for w in WEIGHTS}
    best = max(scores.values())
    w = min((w for w, s in scores.items() if s == best), key=lambda w: abs(w - 0.5))
    return w, scores


def trained_on_validation(fold_dir: Path) -> bool:
    """Whether a finished run's model trained on its validation groups (a refit, a fixed schedule): its scores
    there are in-sample."""
    history_file = Path(fold_dir) / "history.json"
    return history_file.exists() and bool(json.loads(history_file.read_text()).get("refit_on_validation"))


def side_predictions(fold_dir: Path, split: str) -> Path:
    """A finished run's predictions.jsonl on its validation or test side (the validation side is scored
    when absent). A model refit on its validation groups has no honest validation predictions: refused."""
    path = fold_dir / f"eval_{split}" / "predictions.jsonl"
    if split == "val":
        if trained_on_validation(fold_dir):
            raise EmotuneError(f"{fold_dir}: the model was refit on its validation groups, so its scores there are "
                               f"in-sample and cannot weigh or compare models (set model.baseline.refit=false)")
    if not path.exists():
        if split == "test":
            raise EmotuneError(f"{path} not found")
        from emotune.experiments.run import eval_run

        log(f"{fold_dir}: scoring its validation side")
        eval_run(str(fold_dir), split=split)
    return path


def fuse(cv_a: str, cv_b: str, out: str, command: str = "") -> dict:
    from emotune.evaluate.writer import write_evaluation
    from emotune.experiments.cv import format_summary, summarise
    from emotune.io import atomic_write_json

    a_dirs, b_dirs = _fold_dirs(Path(cv_a)), _fold_dirs(Path(cv_b))
    if set(a_dirs) != set(b_dirs):
        raise EmotuneError(f"{cv_a} and {cv_b} have different folds: {sorted(a_dirs)} vs {sorted(b_dirs)}")
    out_dir = Path(out)
    fold_dirs = []
    for name in a_dirs:
        da, db = a_dirs[name], b_dirs[name]
        fa, fb = json.loads((da / "fold.json").read_text()), json.loads((db / "fold.json").read_text())
        if fa != fb:
            raise EmotuneError(f"fold {name}: {da} and {db} were trained on different splits (fold.json differs)")
        sides = {}
        for split in ("val", "test"):
            ids_a, gold, pa, names = read_predictions(side_predictions(da, split))
            ids_b, _, pb, names_b = read_predictions(side_predictions(db, split), names)
            if ids_a != ids_b or sorted(names_b) != sorted(names):
                raise EmotuneError(f"fold {name}, {split}: the two runs scored different samples or labels")
            sides[split] = (ids_a, np.array([names.index(g) if g in names else -1 for g in gold]), pa, pb)
        ids, gold, pa, pb = sides["val"]
        w, scores = choose_weight(pa, pb, gold, names)
        ids, gold, pa, pb = sides["test"]
        fold_out = out_dir / name
        metrics = write_evaluation(fold_out / "eval_test", ids, names, pool(pa, pb, w), gold=gold)
        (fold_out / "eval_test" / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
        atomic_write_json(fold_out / "fusion.json", {"a": str(da), "b": str(db), "weight_a": w,
                                                      "val_ua_by_weight": {str(k): v for k, v in scores.items()}})
        (fold_out / "fold.json").write_text(json.dumps(fa))
        (fold_out / "DONE").write_text("fused\n")
        log(f"{name}: w(A)={w} chosen on validation (UA {scores[w]:.3f}); test UA {metrics['ua']:.3f}")
        fold_dirs.append(fold_out)
    (out_dir / "command.txt").write_text((command or shlex.join(["emotune", "fuse", cv_a, cv_b, "-o", out])) + "\n")
    summary = summarise(fold_dirs, out_dir)
    summary["fusion"] = {"a": str(cv_a), "b": str(cv_b), "weights": WEIGHTS, "rule": "log-linear pooling, w chosen on each fold's validation side"}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    log(format_summary(summary))
    return summary
