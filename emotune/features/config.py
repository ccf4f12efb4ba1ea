"""The `features:` section: which extractors run and where their cache lives."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass
class FeaturesConfig:
    cache_dir: Optional[str] = None  # default: $EMOTUNE_CACHE/features
    extractors: list[str] = dataclasses.field(default_factory=lambda: ["egemaps"])
    workers: int = 1
