"""The `train:` section: optimisation settings."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 16
