"""Seed averaging of trained runs (`emotune ensemble RUN RUN [RUN ...] -o OUT`): the `ensemble` model.

The members are runs of one recipe that differ in their seed (`seed=1`, `seed=2`, ...), trained on the same
split. Their class probabilities are averaged with equal weights, on the validation side and on the test
side alike: nothing is chosen, so the ensemble's validation figure can be compared with its members' (and
with other settings) before its test side is read. Members that all trained on their validation groups
(`train.fixed_schedule`, a refit) are averaged on the test side only: the ensemble has no validation figure.
A member is a run directory made by `emotune train`
or a CV directory made by `emotune cv` (then every fold is averaged with the same fold of the others), or
an ensemble's output: it then counts as one member, so `ensemble SEEDS_AVG HEAD` weighs the seed average and
the head equally.

The output is a run directory (eval_val/, eval_test/, fold.json) or a CV directory (fold folders and
summary.json) like any other, with ensemble.json naming the members; it is reported as "N seeds averaged".
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from emotune.errors import EmotuneError
from emotune.experiments.fuse import read_predictions, side_predictions, trained_on_validation
from emotune.experiments.run import log


def _units(member: Path) -> dict[str, Path]:
    """{fold name: finished run folder} of a run directory (one entry) or of a CV directory."""
    if (member / "DONE").exists():
        return {member.name: member}
    folds = {d.name: d for d in sorted(member.iterdir()) if (d / "DONE").exists()} if member.is_dir() else {}
    if not folds:
        raise EmotuneError(f"{member}: neither a finished run (no DONE) nor a CV directory with finished folds")
    return folds


def _target(run: Path) -> str:
    from emotune.config import load_config

    if not (run / "config.yaml").exists() and (run / "ensemble.json").exists():
        return "single"  # an ensemble's own output: only single-label runs are ever averaged
    return load_config(run / "config.yaml").data.target


def average_unit(runs: list[Path], out: Path) -> dict:
    """Average the members' probabilities on one fold's validation and test sides; returns test metrics."""
    from emotune.evaluate.writer import write_evaluation

    folds = [json.loads((r / "fold.json").read_text()) for r in runs]
    if any(f != folds[0] for f in folds[1:]):
        raise EmotuneError(f"{', '.join(map(str, runs))}: trained on different splits (fold.json differs)")
    targets = {_target(r) for r in runs}
    if targets != {"single"}:
        raise EmotuneError(f"{runs[0]}: seed averaging here is for single-label runs (target {sorted(targets)})")
    # Members trained on their validation groups (a refit, a fixed schedule) have no honest scores there. If
    # all of them did, only the test side is averaged and the ensemble has no validation figure either; a mix
    # is refused by side_predictions (the in-sample members would flatter the average).
    refit = [trained_on_validation(r) for r in runs]
    metrics = {}
    for split in (("test",) if all(refit) else ("val", "test")):
        ids, gold, probs, names = read_predictions(side_predictions(runs[0], split))
        for r in runs[1:]:
            ids_r, _, p, names_r = read_predictions(side_predictions(r, split), names)
            if ids_r != ids or sorted(names_r) != sorted(names):
                raise EmotuneError(f"{r} scored other {split} samples or labels than {runs[0]}")
            probs = probs + p
        probs /= len(runs)
        gold_idx = np.array([names.index(g) if g in names else -1 for g in gold])
        m = write_evaluation(out / f"eval_{split}", ids, names, probs, gold=gold_idx)
        (out / f"eval_{split}" / "metrics.json").write_text(json.dumps(m, indent=1, default=float))
        metrics[split] = m
    (out / "fold.json").write_text(json.dumps(folds[0]))
    (out / "ensemble.json").write_text(json.dumps({"members": [str(r) for r in runs], "rule": "mean of probabilities"},
                                                  indent=1))
    if all(refit):
        (out / "history.json").write_text(json.dumps({"refit_on_validation": True}))  # what the members say
    (out / "DONE").write_text("ensemble\n")
    # Only the validation figure is printed: it is the one a choice may be made on.
    shown = f"validation UA {metrics['val']['ua']:.3f}" if "val" in metrics else "no validation figure (trained on it)"
    log(f"{out.name}: {len(runs)} members; {shown} (test side: {out / 'eval_test'})")
    return metrics["test"]


def ensemble(members: list[str], out: str, command: str = "") -> dict:
    from emotune.experiments.cv import summarise

    if len(members) < 2:
        raise EmotuneError("an ensemble needs at least two runs")
    units = [_units(Path(m)) for m in members]
    out_dir = Path(out)
    cmd = (command or shlex.join(["emotune", "ensemble", *members, "-o", out])) + "\n"
    if all((Path(m) / "DONE").exists() for m in members):  # run directories: one fold
        metrics = average_unit([next(iter(u.values())) for u in units], out_dir)
        (out_dir / "command.txt").write_text(cmd)
        return metrics
    names = set(units[0])
    if any(set(u) != names for u in units[1:]):
        raise EmotuneError(f"the CV directories have different folds: {[sorted(u) for u in units]}")
    fold_dirs = []
    for name in sorted(names):
        average_unit([u[name] for u in units], out_dir / name)
        fold_dirs.append(out_dir / name)
    (out_dir / "command.txt").write_text(cmd)
    summary = summarise(fold_dirs, out_dir)
    summary["ensemble"] = {"members": list(members), "rule": "mean of probabilities, per fold"}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    # Only the validation figure is printed: it is what the ensemble is judged on against its members, and
    # a test summary on the screen would be read before that decision. The test figures are in summary.json.
    val = summary.get("validation", {}).get("ua")
    shown = f"validation UA {val['mean']:.3f} ± {val['std']:.3f}" if val else "no validation figures"
    log(f"{len(fold_dirs)} folds, {len(members)} members: {shown} (test figures: {out_dir / 'summary.json'})")
    return summary
