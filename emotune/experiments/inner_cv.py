"""`train.inner_folds`: the emotion LM's epoch count chosen by inner cross-validation, then a refit.

One validation speaker is a small, noisy judge: on RAVDESS the LM's validation-actor UA read 0.07 above its
test UA, because epochs, settings and seeds were all chosen on those 60 clips. Here the fold's whole training
side (its training and validation groups) is cut into k parts by group; for each part a model from the same
start trains on the others and is validated on it after every epoch (no early stopping, so every part gives
a full curve); the epoch with the best mean curve is then trained on the whole training side, and that model
is the one tested. The test side is never touched before that.

    <run_dir>/inner/<p>/   part p's model: its checkpoints (a killed run resumes there) and best weights
    <run_dir>/model/       the refit on every training group, for the chosen epoch count
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.data.examples import Examples
from emotune.errors import EmotuneError

SPLIT_SEED = 0  # the inner parts depend on the training side only, never on the model's seed


def inner_parts(groups: list[Optional[str]], k: int) -> list[np.ndarray]:
    """Sample indices of k parts, each a set of whole groups (a sample without a group is its own group).

    Groups are shuffled with a fixed seed and dealt out in turn, so parts have equal numbers of groups
    (±1); a group never straddles two parts, so no speaker is validated on by a model that heard them."""
    keys = [g if g is not None else f"#sample{i}" for i, g in enumerate(groups)]
    names = sorted(set(keys))
    if len(names) < k:
        raise EmotuneError(f"train.inner_folds={k}: the training side has {len(names)} group(s), "
                           f"fewer than the {k} parts needed")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(names))
    part_of = {names[j]: turn % k for turn, j in enumerate(order)}
    return [np.array([i for i, key in enumerate(keys) if part_of[key] == p], dtype=int) for p in range(k)]


def choose_by_inner_cv(cfg, both: Examples, shapes: dict, run_dir: Path, run_hash: str, monitor: str = "ua"):
    """Train the k part models, pick the epoch of the best mean validation score, refit on `both`.

    Returns (the refit model, its history): `best_epoch` and `best_val_<monitor>` are the mean curve's argmax
    and maximum (the fold's validation figure), `inner_curves` every part's per-epoch scores."""
    from emotune.experiments.run import build_model, log

    k = cfg.train.inner_folds
    parts = inner_parts(both.groups or [None] * len(both), k)
    inner_train = dataclasses.replace(cfg.train, inner_folds=0, patience=0)
    inner_cfg = dataclasses.replace(cfg, train=inner_train)
    everyone = np.arange(len(both))
    curves = []
    for p, held in enumerate(parts, start=1):
        rest = np.setdiff1d(everyone, held)
        log(f"{run_dir.name}: inner part {p}/{k}: train {len(rest)}, validate {len(held)} "
            f"({len(set(both.subset(held).groups or []))} group(s))")
        model = build_model(inner_cfg, both.label_names, shapes)
        history = model.fit(both.subset(rest), both.subset(held), run_dir / "inner" / str(p),
                            run_hash=f"{run_hash}:inner{p}/{k}")
        curve = [record.get(f"val_{monitor}") for record in history["history"]]
        if not curve or any(v is None for v in curve):
            raise EmotuneError(f"{run_dir}: inner part {p} recorded no validation {monitor} (no labelled sample in it?)")
        curves.append(curve)
    mean = np.mean(np.asarray(curves, dtype=float), axis=0)
    epoch = int(np.argmax(mean)) + 1  # the first epoch of the best mean: ties go to the cheaper model
    log(f"{run_dir.name}: mean inner validation {monitor} per epoch "
        + ", ".join(f"{v:.4f}" for v in mean) + f"; refit for {epoch} epoch(s) on all {len(both)} training samples")
    refit_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, inner_folds=0, epochs=epoch, patience=0))
    model = build_model(refit_cfg, both.label_names, shapes)
    refit_history = model.fit(both, both.subset([]), run_dir / "model", run_hash=run_hash + ":refit")
    history = {"inner_folds": k, "inner_groups": [sorted({str(g) for g in both.subset(h).groups}) for h in parts],
               "inner_curves": curves, "inner_mean": mean.tolist(), "best_epoch": epoch,
               f"best_val_{monitor}": float(mean[epoch - 1]), "monitor": monitor,
               "refit_on_validation": True, "refit_epochs": epoch, "refit": refit_history}
    return model, history
