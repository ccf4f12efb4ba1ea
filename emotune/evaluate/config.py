"""The `eval:` section: how predictions are made and scored."""

from __future__ import annotations

import dataclasses
from typing import Literal

from emotune.errors import check_ranges


@dataclasses.dataclass
class EvalConfig:
    split: str = "test"
    mode: Literal["score", "generate"] = "score"
    # Multi-label: how scores become labels. Thresholds are chosen on the validation side only
    # (emotune.evaluate.metrics.choose_thresholds): one per label, one for all, or `threshold` as given.
    threshold_policy: Literal["per_label", "global", "fixed"] = "per_label"
    threshold: float = 0.5  # the fixed value, and the default for a label with no validation positive
    ece_bins: int = 15  # equal-width bins of the calibration error
    # Test-time ablation: these model inputs are removed (read as missing) when evaluating a trained run.
    drop_inputs: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        check_ranges(self, {"ece_bins": ">=1"})
