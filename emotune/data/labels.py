"""Label sets as data: canonical names, aliases and named subsets, read from `labelsets/*.yaml`.

A subset may `merge` labels (IEMOCAP 4-class: excited → happy; GoEmotions → Ekman). Samples whose label
falls outside the chosen subset are dropped by the caller with a count, never silently.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from emotune.errors import EmotuneError

LABELSET_DIR = Path(__file__).parent / "labelsets"


@dataclasses.dataclass(frozen=True)
class LabelSet:
    name: str
    full: tuple[str, ...]  # every canonical name of the dataset
    names: tuple[str, ...]  # the classes of the chosen subset, in class-index order
    subset: str = "all"
    aliases: dict = dataclasses.field(default_factory=dict)  # raw spelling -> canonical name
    merge: dict = dataclasses.field(default_factory=dict)  # canonical name -> subset name

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def canonical(self, raw: str) -> str | None:
        """A raw annotation (code, alias or name) → canonical name of the full set, or None."""
        text = str(raw).strip()
        for candidate in (text, text.lower()):
            if candidate in self.full:
                return candidate
            if candidate in self.aliases:
                return self.aliases[candidate]
        return None

    def to_subset(self, name: str | None) -> str | None:
        """A canonical name → its class in this subset (after merges), or None when outside it."""
        if name is None:
            return None
        name = self.merge.get(name, name)
        return name if name in self.names else None

    def map_many(self, names: list[str]) -> list[str]:
        """Multi-label list → subset classes, deduplicated, in canonical (class-index) order."""
        mapped = {self.to_subset(n) for n in names}
        return [n for n in self.names if n in mapped]

    def map_soft(self, soft: dict[str, float] | None) -> dict[str, float] | None:
        """Soft votes → subset classes; weight on classes outside the subset is dropped, then renormalised."""
        if not soft:
            return None
        out: dict[str, float] = {}
        for n, w in soft.items():
            m = self.to_subset(n)
            if m is not None:
                out[m] = out.get(m, 0.0) + float(w)
        total = sum(out.values())
        if total <= 0:
            return None
        return {n: out[n] / total for n in self.names if n in out}


def available() -> list[str]:
    return sorted(p.stem for p in LABELSET_DIR.glob("*.yaml"))


def load_label_set(name: str, subset: str = "all") -> LabelSet:
    path = LABELSET_DIR / f"{name}.yaml"
    if not path.exists():
        raise EmotuneError(f"unknown label set '{name}'; known: {', '.join(available())}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    full = tuple(data["labels"])
    aliases = {str(k): v for k, v in (data.get("aliases") or {}).items()}
    for raw, canon in aliases.items():
        if canon not in full:
            raise EmotuneError(f"{path}: alias '{raw}' points to '{canon}', which is not a label")
    subsets = data.get("subsets") or {}
    if subset == "all":
        return LabelSet(name, full, full, "all", aliases, {})
    if subset not in subsets:
        known = ", ".join(["all", *subsets])
        raise EmotuneError(f"label set '{name}' has no subset '{subset}'; known: {known}")
    spec = subsets[subset]
    merge = dict(spec.get("merge") or {})
    return LabelSet(name, full, tuple(spec["labels"]), subset, aliases, merge)
