"""Label sets as data: canonical names, aliases and named subsets, read from `labelsets/*.yaml`.

A label set is named three ways: a built-in name (`ravdess`), a YAML file of the same form given by
path (`my_labels.yaml`, `sets/acted.yml`: anything ending in .yaml/.yml or holding a slash; relative to
the working directory), or its content (a dict: how a manifest stores a label set that came from a
file, so the manifest keeps working after the file or the folder moves).

A subset may `merge` labels (IEMOCAP 4-class: excited → happy; GoEmotions → Ekman). Samples whose label
falls outside the chosen subset are dropped by the caller with a count, never silently.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Union

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


LabelSetRef = Union[str, dict]


def is_file_ref(ref: Any) -> bool:
    return isinstance(ref, str) and (ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref)


def read_label_set_file(path: str | Path) -> dict:
    """A user's label-set YAML, checked, with its `name` (the file's stem when it names none)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise EmotuneError(f"label set file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EmotuneError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list) or not data["labels"]:
        raise EmotuneError(f"{path}: a label set needs `labels: [name, ...]` (optional: aliases, subsets)")
    if not all(isinstance(x, str) and x for x in data["labels"]):
        raise EmotuneError(f"{path}: every label must be a non-empty string")
    if len(set(data["labels"])) != len(data["labels"]):
        raise EmotuneError(f"{path}: a label is listed twice")
    return {"name": str(data.get("name") or path.stem), "labels": list(data["labels"]),
            "aliases": data.get("aliases") or {}, "subsets": data.get("subsets") or {}}


def label_set_content(ref: LabelSetRef) -> dict:
    """The label set's data (for a manifest to store): a file's content, a built-in's, or the dict itself."""
    if isinstance(ref, dict):
        return ref
    if is_file_ref(ref):
        return read_label_set_file(ref)
    path = LABELSET_DIR / f"{ref}.yaml"
    if not path.exists():
        raise EmotuneError(f"unknown label set '{ref}'; known: {', '.join(available())}, or a path to your own "
                           f"YAML file (labels: [...], optional aliases and subsets)")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {"name": ref, **data}


def label_set_name(ref: LabelSetRef) -> str:
    return ref.get("name", "custom") if isinstance(ref, dict) else (Path(ref).stem if is_file_ref(ref) else ref)


def load_label_set(ref: LabelSetRef, subset: str = "all") -> LabelSet:
    data = label_set_content(ref)
    name = str(data.get("name") or label_set_name(ref))
    path = ref if is_file_ref(ref) else f"label set '{name}'"
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
