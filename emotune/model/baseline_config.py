"""`model.baseline`: settings of the logistic-regression and MLP heads."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class BaselineConfig:
    pass
