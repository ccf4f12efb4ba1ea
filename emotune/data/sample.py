"""The sample schema (one JSON object per manifest line) and the manifest file itself.

A manifest is JSONL. Its first line is a header naming the dataset, its root and its label set, so the
file is self-describing and media paths (relative to the root) resolve wherever the manifest travels:

    {"emotune_manifest": 2, "dataset": "ravdess", "root": "ravdess_speech", "root_base": "EMOTUNE_DATA", ...}
    {"id": "03-01-05-02-01-01-12", "dataset": "ravdess", "label": "angry", ...}

The root is recorded as the user gave it: an absolute path, or a path relative to `EMOTUNE_DATA`
(`root_base`), never relative to the manifest's folder or to the working directory of `prepare`, so a
manifest copied to another folder, machine or checkout still finds its media. Version-1 manifests
(root relative to the manifest's folder) are still read as they were written.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional

from emotune.errors import EmotuneError
from emotune.io import read_jsonl

MEDIA_FIELDS = ("audio", "video", "image")
MANIFEST_VERSION = 2
DATA_HOME_BASE = "EMOTUNE_DATA"  # root_base of a root recorded relative to $EMOTUNE_DATA


@dataclasses.dataclass
class Sample:
    id: str
    dataset: str
    label: Optional[str] = None
    labels: list[str] = dataclasses.field(default_factory=list)
    soft: Optional[dict[str, float]] = None
    text: str = ""
    audio: Optional[str] = None
    video: Optional[str] = None
    image: Optional[str] = None
    group: Optional[str] = None
    split: Optional[str] = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Sample":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        if "id" not in d or "dataset" not in d:
            raise ValueError("missing required field 'id' or 'dataset'")
        return cls(**d)

    def modalities(self) -> list[str]:
        """Which inputs this sample carries (text counts when non-empty)."""
        present = [m for m in MEDIA_FIELDS if getattr(self, m)]
        if self.text:
            present.append("text")
        return present


@dataclasses.dataclass
class Problem:
    """One invalid row or file: where it is and what is wrong, for a one-line report."""

    file: str
    line: Optional[int]
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclasses.dataclass
class Manifest:
    dataset: str
    root_ref: str | Path  # the root as the header records it
    label_set: str | dict  # a built-in name, or the content of a user's label-set file
    subset: str
    samples: list[Sample]
    path: Optional[Path] = None
    # What a relative `root_ref` is relative to: "absolute" (it is not relative), DATA_HOME_BASE, or
    # "manifest" (version-1 headers: the manifest's own folder).
    root_base: str = "absolute"

    @property
    def root(self) -> Path:
        """The dataset folder now. Resolved on use (EMOTUNE_DATA may differ between machines), so reading a
        manifest for its labels or splits never needs the media; an unfindable relative root stops here."""
        ref = Path(os.path.expanduser(str(self.root_ref)))
        if ref.is_absolute() or self.root_base == "absolute":
            return ref
        if self.root_base == "manifest":
            return Path(os.path.abspath(self.path)).parent / ref if self.path else ref
        from emotune.paths import data_home

        home = data_home()
        where = f"manifest {self.path}" if self.path else "manifest"
        if home is None:
            raise EmotuneError(f"{where}: dataset root '{self.root_ref}' is relative to EMOTUNE_DATA, which is not set "
                               f"(set EMOTUNE_DATA to the folder that holds {ref.as_posix()}/)")
        if not (home / ref).is_dir():
            raise EmotuneError(f"{where}: dataset root '{self.root_ref}' not found: looked in {home / ref} "
                               f"(EMOTUNE_DATA={home})")
        return home / ref

    def by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.samples}

    def media_path(self, sample: Sample, field: str) -> Optional[Path]:
        """The absolute path of a sample's media file; refuses relative paths that climb out of the root."""
        rel = getattr(sample, field)
        if not rel:
            return None
        return safe_join(self.root, rel, where=f"sample {sample.id}")

    def labels(self):
        from emotune.data.labels import load_label_set

        return load_label_set(self.label_set, self.subset)


def safe_join(root: Path, rel: str, where: str = "") -> Path:
    """root/rel, but a relative path never climbs out of root (`../../x` is a typo or a trick, refused).

    An absolute path is taken as written: a table that names its media by absolute path (media spread
    over several disks) keeps them absolute in the manifest, which then does not move with the root.
    """
    if os.path.isabs(rel):
        return Path(os.path.abspath(rel))
    root_abs = Path(os.path.abspath(root))
    target = Path(os.path.abspath(root_abs / rel))
    if target != root_abs and root_abs not in target.parents:
        raise EmotuneError(f"{where}: media path '{rel}' escapes the dataset root {root}")
    return target


def root_reference(given: str | Path) -> tuple[Path, str]:
    """(the dataset folder now, how a manifest records it) for a root as the user named it.

    Absolute stays absolute. A relative name found under EMOTUNE_DATA is recorded relative to it, so the
    manifest works on any machine whose EMOTUNE_DATA holds the dataset. A relative name found only under
    the working directory is recorded absolute: the working directory of `prepare` means nothing later.
    """
    from emotune.paths import data_home, resolve_data_root

    p = Path(os.path.expanduser(str(given)))
    if p.is_absolute():
        return p, str(p)
    home = data_home()
    in_home = home / p if home is not None and (home / p).exists() else None
    if p.exists() and not (in_home is not None and in_home.resolve() == p.resolve()):
        return Path(os.path.abspath(p)), os.path.abspath(p)
    if in_home is not None:
        return in_home, p.as_posix()
    return resolve_data_root(str(given)), str(given)  # raises: not found here nor under EMOTUNE_DATA


def write_manifest(path: Path, dataset: str, root: Path, label_set: str | dict, subset: str, samples: Iterable[Sample],
                   root_ref: Optional[str] = None) -> int:
    """Write atomically (temp file + rename), so a killed prepare never leaves half a manifest.

    `root_ref` is how the header records the root (see `root_reference`); by default `root`, made absolute."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ref = str(root_ref) if root_ref is not None else os.path.abspath(root)
    header = {"emotune_manifest": MANIFEST_VERSION, "dataset": dataset, "root": ref}
    if not Path(ref).is_absolute():
        header["root_base"] = DATA_HOME_BASE
    header.update({"label_set": label_set, "subset": subset})
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for s in samples:
            f.write(s.to_json() + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    if not path.exists():
        raise EmotuneError(f"manifest not found: {path} (make one with `emotune prepare`)")
    samples: list[Sample] = []
    header = None
    for lineno, obj in read_jsonl(path):
        if header is None:
            if not isinstance(obj, dict) or "emotune_manifest" not in obj:
                raise EmotuneError(f"{path}:1: not an emotune manifest (no header line)")
            header = obj
            continue
        try:
            samples.append(Sample.from_dict(obj))
        except (TypeError, ValueError) as exc:
            raise EmotuneError(f"{path}:{lineno}: {exc}") from None
    if header is None:
        raise EmotuneError(f"{path}: empty manifest")
    for key in ("dataset", "root", "label_set"):
        if not isinstance(header.get(key), str) and not (key == "label_set" and isinstance(header.get(key), dict)):
            raise EmotuneError(f"{path}:1: manifest header lacks '{key}'")
    # Version 1 recorded a relative root relative to the manifest's folder: read old files as written.
    if Path(header["root"]).is_absolute():
        base = "absolute"
    elif header.get("emotune_manifest") == 1:
        base = "manifest"
    else:
        base = header.get("root_base", DATA_HOME_BASE)
        if base != DATA_HOME_BASE:
            raise EmotuneError(f"{path}:1: unknown root_base '{base}' (expected {DATA_HOME_BASE})")
    return Manifest(header["dataset"], header["root"], header["label_set"], header.get("subset", "all"), samples,
                    path, root_base=base)


def validate(samples: list[Sample], root: Path, label_set, check_media: bool = True, source: str = "manifest",
             origins: Optional[list[tuple[str, Optional[int]]]] = None) -> list[Problem]:
    """Every problem in a list of samples: empty required fields, duplicate ids, unknown labels, missing media.

    `origins[i]` is (file, line) of sample i in the published dataset, so a report points at the source row.
    """
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, s in enumerate(samples, 1):
        file, line = origins[i - 1] if origins else (source, i)
        if not s.id or not str(s.id).strip():
            problems.append(Problem(file, line, "empty id"))
        elif s.id in seen:
            problems.append(Problem(file, line, f"duplicate id '{s.id}' (first seen as sample {seen[s.id]})"))
        else:
            seen[s.id] = i
        if not s.dataset:
            problems.append(Problem(file, line, f"sample '{s.id}': empty dataset"))
        for name in [s.label] if s.label is not None else []:
            if name not in label_set.full:
                problems.append(Problem(file, line, f"sample '{s.id}': label '{name}' is not in label set '{label_set.name}'"))
        for name in list(s.labels) + list((s.soft or {}).keys()):
            if name not in label_set.full:
                problems.append(Problem(file, line, f"sample '{s.id}': label '{name}' is not in label set '{label_set.name}'"))
        if s.soft:
            total = sum(s.soft.values())
            if abs(total - 1.0) > 1e-3:
                problems.append(Problem(file, line, f"sample '{s.id}': soft weights sum to {total:.3f}, not 1"))
        if not s.modalities():
            problems.append(Problem(file, line, f"sample '{s.id}': no media and no text"))
        if check_media:
            for field in MEDIA_FIELDS:
                rel = getattr(s, field)
                if not rel:
                    continue
                try:
                    p = safe_join(root, rel, where=f"sample '{s.id}'")
                except EmotuneError as exc:
                    problems.append(Problem(file, line, str(exc)))
                    continue
                if not p.exists():
                    problems.append(Problem(file, line, f"sample '{s.id}': {field} file not found: {p}"))
    return problems
