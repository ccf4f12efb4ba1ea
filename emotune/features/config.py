"""The `features:` section: which extractors run and where their cache lives.

An extractor is named by a spec: the name alone, or with settings inline, e.g.

    features:
      extractors: [egemaps, whisper, "whisper_seq(k=4)", minilm, fer(frames=8), "hf:path/to/model(pool=mean)"]

Settings sit inside the name on purpose: every stage that loads features passes these same strings,
so a changed setting can never be extracted under one meaning and loaded under another.
`emotune features --list` shows every extractor with its settings and defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from emotune.errors import check_ranges


@dataclasses.dataclass
class FeaturesConfig:
    cache_dir: Optional[str] = None  # default: $EMOTUNE_CACHE/features (~/.cache/emotune/features)
    extractors: list[str] = dataclasses.field(default_factory=lambda: ["egemaps"])
    workers: int = 1  # worker processes; each loads its models once
    flush_every: int = 32  # samples per saved shard: a killed run loses at most this many per worker

    def __post_init__(self) -> None:
        check_ranges(self, {"workers": ">=1", "flush_every": ">=1"})
