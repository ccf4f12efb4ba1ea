"""`model.lm.distill`: train the emotion LM towards a head's cross-fitted probabilities (knowledge distillation).

On small corpora a logistic regression on pooled features generalises across speakers better than the LM
learns to from ~1,000 one-hot labels. Distillation (Hinton et al. 2015) gives the LM the head's
class probabilities as part of its target: t = (1 - w) · one-hot(gold) + w · p_head.

The head's probabilities must be ones it did not fit: on its own training samples a head is near certain,
and copying that teaches nothing a one-hot label does not. So they are cross-fitted, as in stacking: the
LM's training side is cut into `folds` parts (by group — speaker — when every sample has one, else
stratified by label), and each part's probabilities come from a head fitted, with its own model selection,
on the other parts. Only the LM's training side is read (the validation side only for the MLP head's early
stopping, which the LM's own early stopping reads too), so the protocol's rule — no choice on test — holds.
The head is not used at prediction time: the trained LM answers alone. A run resumed from a checkpoint fits the
heads again (the same fits: same data, seed and code) before loading its weights.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from emotune.data.examples import Examples
from emotune.errors import EmotuneError


def splits(train: Examples, folds: int, seed: int) -> tuple[list[np.ndarray], str]:
    """The held-out index of each cross-fitting part, and how they were made: the LR's inner splits of the
    training side alone (grouped k-fold where every sample has a group, else stratified or plain k-fold)."""
    from emotune.model.baseline_lr import inner_splits

    _, parts, how = inner_splits(train, train.subset([]), folds, seed)
    return [held for _, held in parts], how


def _head(kind: str, label_names: list[str], inputs: list[str], imbalance: str, seed: int):
    from emotune.model.baseline_config import BaselineConfig

    if kind == "lr":
        from emotune.model.baseline_lr import LogisticBaseline

        # No refit on the validation side: the LM early-stops on it, so nothing it is taught may come from it.
        return LogisticBaseline(label_names, inputs, BaselineConfig(refit=False), "single",
                                imbalance if imbalance in ("class_weights", "balanced_sampler") else "none", seed)
    from emotune.model.baseline_mlp import MLPBaseline

    return MLPBaseline(label_names, inputs, BaselineConfig(), "single", imbalance, seed)  # the head as shipped


def teacher_targets(kind: str, weight: float, folds: int, label_names: list[str], inputs: list[str],
                    imbalance: str, seed: int, train: Examples, val: Examples) -> tuple[np.ndarray, dict]:
    """([N, C] distilled targets of the training side, a summary of the teacher). `train` has single labels."""
    from emotune.evaluate.metrics import classification_metrics

    if kind == "mlp" and len(val) == 0:
        raise EmotuneError("model.lm.distill=mlp needs a validation side (the MLP head's early stopping)")
    y = train.targets("single").astype(int)
    if (y < 0).any():
        raise EmotuneError("model.lm.distill needs a single label on every training sample")
    C = len(label_names)
    probs = np.zeros((len(train), C))
    parts, how = splits(train, folds, seed)
    for k, held in enumerate(parts):
        rest = np.setdiff1d(np.arange(len(train)), held)
        head = _head(kind, label_names, inputs, imbalance, seed)
        head.fit(train.subset(rest), val)
        probs[held] = head.predict_proba(train.subset(held))
        if not os.environ.get("EMOTUNE_QUIET"):
            print(f"distill: {kind} teacher part {k + 1}/{len(parts)} ({len(held)} samples held out)",
                  file=sys.stderr, flush=True)
    m = classification_metrics(y, probs.argmax(1), label_names)
    targets = (1 - weight) * np.eye(C)[y] + weight * probs
    summary = {"kind": kind, "weight": weight, "cross_fit": how, "teacher_train_ua": round(float(m["ua"]), 4),
               "teacher_agrees_with_gold": round(float((probs.argmax(1) == y).mean()), 4)}
    return targets.astype(np.float32), summary
