"""The `train:` section: optimisation settings of every trainable kind (the emotion LM and the MLP head).

A setting has this one home. Where a kind needs other defaults than the LM's, `KIND_DEFAULTS` holds them
and the recipe loader applies them to the keys a recipe leaves unset (the resolved `config.yaml` of a
run then shows the values used).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from emotune.errors import check_ranges
from emotune.vocab import Imbalance


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3  # AdamW peak learning rate (projectors and LoRA)
    batch_size: int = 16  # samples per process per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    warmup: float = 0.05  # fraction of all optimizer steps spent warming up linearly, then cosine decay to 0
    clip: float = 1.0  # max gradient norm (0 = no clipping)
    weight_decay: float = 0.0
    patience: int = 3  # epochs without a better validation UA before stopping (0 = never stop early)
    imbalance: Imbalance = "none"
    focal_gamma: float = 2.0
    # Label smoothing ε for the cross-entropy (single and soft targets; the LM and the MLP): the target
    # becomes (1 - ε) · target + ε / classes.
    label_smoothing: float = 0.0
    # Choose, then refit (the emotion LM): after early stopping has chosen the epoch on the validation side,
    # train again from the same start on training + validation samples for that many epochs (the LR's
    # model.baseline.refit, for the epoch count): no validation sample is lost to training. The selection
    # run's validation scores stay the figures settings are compared on.
    refit: bool = False
    # Choose by inner cross-validation, then refit (the emotion LM; the LM issue's protocol): the fold's training
    # and validation groups together are cut into this many parts by group (speaker); a model from the same start
    # trains on all but one part and is validated on it each epoch, for every part; the epoch with the best UA
    # over all parts' held-out samples is then trained on all of them. That UA is the validation figure, over
    # every training group instead of one. 0 = off (the validation side chooses; train.refit then refits, or not).
    inner_folds: int = 0
    # A fixed schedule (the emotion LM): train on training + validation samples for exactly `epochs` and keep the
    # last weights; nothing is chosen on the validation side, so the run has no validation figure. For a schedule
    # set beforehand on the training side, e.g. the epoch count `inner_folds` chose for the recipe: the refit is
    # then the whole cost, where inner CV trains every fold k + 1 times and `refit` twice.
    fixed_schedule: bool = False
    # Weight averaging: an exponential moving average of the trained weights (decay per optimizer step;
    # 0 = off). Validation, early stopping and the kept model use the averaged weights, training goes on
    # from the live ones. The decay warms up as min(ema, (1 + step) / (10 + step)), so the first steps'
    # weights (near the random start) fade fast. 0.99 averages over about the last 100 steps.
    ema: float = 0.0
    # Batch samples of similar length (shuffled within windows of 50 batches, batch order shuffled): less
    # padding per batch, same samples per epoch. Off (the default) = a plain shuffle, the order every
    # published run before it used; turn it on for corpora whose prompts differ a lot in length (MELD).
    group_by_length: bool = False
    # bf16 autocast for the forward pass: auto = only where bf16 matmuls are fast (GPUs, CPUs with AVX512-BF16
    # or AMX; elsewhere they are ~90x slower than fp32, see emotune/model/precision.py); never fp16 on CPU.
    bf16: bool | Literal["auto"] = "auto"
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps (0 = at the end of each epoch only)
    eval_batch_size: int = 32
    progress: bool = True  # progress bar with loss and rate on stderr

    def __post_init__(self) -> None:
        if self.inner_folds == 1:
            from emotune.errors import EmotuneError

            raise EmotuneError("train.inner_folds must be 0 (off) or at least 2 (each part is validated by a model "
                               "trained on the others)")
        check_ranges(self, {"epochs": ">=1", "lr": ">0", "batch_size": ">=1", "grad_accum": ">=1", "warmup": "0..1", "clip": ">=0", "weight_decay": ">=0", "patience": ">=0", "focal_gamma": ">=0", "label_smoothing": "0..1", "ema": "0..1", "inner_folds": ">=0", "checkpoint_every": ">=0", "eval_batch_size": ">=1"})


# The MLP head (a few thousand parameters on pooled features) trains for many short epochs on large
# batches; these were its settings when they lived under model.baseline, so its figures are unchanged.
KIND_DEFAULTS: dict[str, dict] = {
    "baseline_mlp": {"epochs": 200, "batch_size": 64, "patience": 15, "weight_decay": 1e-2, "lr": 1e-3},
}


def train_defaults(kind: str) -> TrainConfig:
    """`train:` as a recipe that sets nothing gets it for model kind `kind`."""
    return TrainConfig(**KIND_DEFAULTS.get(kind, {}))
