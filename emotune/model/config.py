"""The `model:` section: a baseline head or the emotion LM, and which cached features feed it."""

from __future__ import annotations

import dataclasses

from emotune.model.baseline_config import BaselineConfig
from emotune.model.lm_config import LMConfig
from emotune.vocab import ModelKind


@dataclasses.dataclass
class ModelConfig:
    kind: ModelKind = "baseline_lr"
    # Feature extractors whose cached outputs feed the model (names as in `features.extractors`).
    inputs: list[str] = dataclasses.field(default_factory=lambda: ["egemaps"])
    baseline: BaselineConfig = dataclasses.field(default_factory=BaselineConfig)
    lm: LMConfig = dataclasses.field(default_factory=LMConfig)
