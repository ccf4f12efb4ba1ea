"""The `eval:` section: how predictions are made and scored."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass
class EvalConfig:
    split: str = "test"
    mode: Literal["score", "generate"] = "score"
