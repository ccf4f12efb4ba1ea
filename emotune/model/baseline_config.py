"""`model.baseline`: settings of the logistic-regression and MLP heads.

The imbalance option is not here: both baselines take `train.imbalance` (one knob for every model kind).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

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
    # MLP: one hidden layer (0 = a linear softmax head trained like the MLP), AdamW, early stopping on val UA.
    hidden: int = 256
    dropout: float = 0.3
    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    patience: int = 15  # epochs without a better validation UA before stopping

    def __post_init__(self) -> None:
        check_ranges(self, {"inner_folds": ">=1", "max_iter": ">=1", "hidden": ">=0", "dropout": "0..1", "epochs": ">=1", "lr": ">0", "weight_decay": ">=0", "batch_size": ">=1", "patience": ">=0"})
