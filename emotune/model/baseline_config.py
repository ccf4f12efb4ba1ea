"""`model.baseline`: what the logistic-regression and MLP heads are (pooling, C grid, MLP shape).

How the MLP is optimised (epochs, lr, batch size, patience, weight decay, imbalance) lives in `train.*`,
the one home of optimisation settings for every trainable kind (see emotune/train/config.py for the
MLP's own defaults).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from emotune.errors import check_ranges


@dataclasses.dataclass
class BaselineConfig:
    # Input: a (k, d) sequence feature is pooled over its k rows; "mean_std" appends the std (2·d values).
    pool: Literal["mean", "mean_std"] = "mean"
    # Logistic regression: inverse L2 strength C chosen by inner cross-validation on the training side
    # (grouped by speaker/session when the samples have groups), scored by UA (mAP for multi-label).
    C_grid: list[float] = dataclasses.field(default_factory=lambda: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    inner_folds: int = 5
    max_iter: int = 2000
    # After C is chosen, the final fit uses training + validation samples ("choose, then refit": no
    # speaker is lost to validation). Multi-label runs keep validation out: their thresholds are chosen there.
    refit: bool = True
    # MLP: one hidden layer (0 = a linear softmax head trained like the MLP); trained with `train.*`.
    hidden: int = 256
    dropout: float = 0.3
    # MLP seed averaging: this many nets from seeds seed, seed+1, ..., each early-stopped on validation on
    # its own; their class probabilities are averaged (1 = one net, as before the key existed).
    seeds: int = 1

    # Keys that lived here before and now have one home elsewhere: the loader points to it.
    MOVED: ClassVar[dict[str, str]] = {k: f"train.{k}" for k in ("epochs", "lr", "weight_decay", "batch_size", "patience")}

    def __post_init__(self) -> None:
        check_ranges(self, {"inner_folds": ">=1", "max_iter": ">=1", "hidden": ">=0", "dropout": "0..1", "seeds": ">=1"})
