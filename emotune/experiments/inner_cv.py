"""`train.inner_folds`: the emotion LM's epoch count chosen by inner cross-validation, then a refit.

One validation speaker is a small, noisy judge: on RAVDESS the LM's validation-actor UA read 0.07 above its
test UA, because epochs, settings and seeds were all chosen on those 60 clips. Here the fold's whole training
side (its training and validation groups) is cut into k parts by group; for each part a model from the same
start trains on the others and is validated on it after every epoch (no early stopping, so every part gives
a full curve); the epoch whose out-of-part predictions score best is then trained on the whole training
side, and that model is the one tested. The test side is never touched before that.

    <run_dir>/inner/<p>/   part p's model: its checkpoints (a killed run resumes there) and best weights
    <run_dir>/eval_val/    every training sample scored by the part model that did not see it, at the chosen epoch
    <run_dir>/model/       the refit on every training group, for the chosen epoch count
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from emotune.process import is_main_process

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


def choose_by_inner_cv(cfg, both: Examples, shapes: dict, run_dir: Path, run_hash: str):
    """Train the k part models, pick the epoch of the best validation UA over all parts, refit on `both`.

    Every part's held-out samples are scored after each epoch by the model that did not train on them; the
    epoch's figure is the UA of those out-of-part predictions pooled over the parts (with parts of equal class
    counts, the mean of the parts' UAs). The chosen epoch's predictions go to <run_dir>/eval_val/, so the
    fold's validation figure can be recomputed from them. Returns (the refit model, its history): `best_epoch`
    and `best_val_ua` (that figure), `inner_pooled` per epoch, `inner_curves` every part's own UA per epoch."""
    from emotune.evaluate.metrics import classification_metrics
    from emotune.evaluate.writer import write_evaluation
    from emotune.experiments.run import build_model, log

    k = cfg.train.inner_folds
    parts = inner_parts(both.groups or [None] * len(both), k)
    inner_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, inner_folds=0, patience=0))
    everyone = np.arange(len(both))
    curves, held_out, probs = [], [], []  # per part: UA per epoch, its scored samples, probabilities per epoch
    for p, held in enumerate(parts, start=1):
        rest, held_ex = np.setdiff1d(everyone, held), both.subset(held)
        log(f"{run_dir.name}: inner part {p}/{k}: train {len(rest)}, validate {len(held)} "
            f"({len(set(held_ex.groups))} group(s))")
        model = build_model(inner_cfg, both.label_names, shapes)
        records = model.fit(both.subset(rest), held_ex, run_dir / "inner" / str(p),
                            run_hash=f"{run_hash}:inner{p}/{k}", keep_val_probs=True)["history"]
        if not records or any("val_probs" not in r for r in records):
            raise EmotuneError(f"{run_dir}: inner part {p} recorded no validation scores (no labelled sample in it?)")
        curves.append([r["val_ua"] for r in records])
        held_out.append(held_ex.subset(model.trainable(held_ex)))  # the samples LMTask.validate scored, in order
        probs.append([np.asarray(r["val_probs"], dtype=float) for r in records])
    pooled = held_out[0]
    for ex in held_out[1:]:
        pooled = pooled.concat(ex)
    gold = pooled.hard_labels()
    per_epoch = [np.vstack([part[e] for part in probs]) for e in range(len(curves[0]))]
    scores = [classification_metrics(gold, pr.argmax(1), both.label_names)["ua"] for pr in per_epoch]
    epoch = int(np.argmax(scores)) + 1  # the first epoch of the best score: ties go to the cheaper model
    log(f"{run_dir.name}: inner validation ua per epoch " + ", ".join(f"{v:.4f}" for v in scores)
        + f"; refit for {epoch} epoch(s) on all {len(both)} training samples")
    if is_main_process():
        write_evaluation(run_dir / "eval_val", pooled.ids, both.label_names, per_epoch[epoch - 1], gold=gold,
                         multi=False, ece_bins=cfg.eval.ece_bins)
    refit_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, inner_folds=0, epochs=epoch, patience=0))
    model = build_model(refit_cfg, both.label_names, shapes)
    # The weights every fold starts from (run_fold writes init_hash.txt); a head built inside fit sets its own.
    model.init_hash = model.init_hash or model.state_hash()
    refit_history = model.fit(both, both.subset([]), run_dir / "model", run_hash=run_hash + ":refit")
    history = {"inner_folds": k, "inner_groups": [sorted({str(both.groups[i]) for i in h}) for h in parts] if both.groups else [],
               "inner_curves": curves, "inner_pooled": scores, "best_epoch": epoch, "best_val_ua": scores[epoch - 1],
               "monitor": "ua", "refit_on_validation": True, "refit_epochs": epoch, "refit": refit_history}
    return model, history
