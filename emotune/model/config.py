"""The `model:` section: a baseline head or the emotion LM."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass
class ModelConfig:
    kind: Literal["baseline_lr", "baseline_mlp", "emotion_lm"] = "baseline_lr"
    inputs: list[str] = dataclasses.field(default_factory=lambda: ["egemaps"])  # feature extractors fed in
