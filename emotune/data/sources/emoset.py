"""EmoSet (Yang et al. 2023): images with one of Mikels' 8 emotions and per-image visual attributes.

    train.json / val.json / test.json   the official splits: a list of [label, image path, annotation path]
    image/<emotion>/<name>.jpg
    annotation/<emotion>/<name>.json    {"emotion": ..., "brightness": ..., "colorfulness": ..., "object": [...],
                                         "scene": ..., "facial_expression": ..., "human_action": ...}
Attributes that an annotation has go to meta (not every image has a face or a person). `val` is stored as
split `dev`, like the other datasets' validation split. A split file entry has no line of its own (the
release writes each file on one line), so problems name the entry number in place of a line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample, safe_join
from emotune.data.sources import Row
from emotune.errors import EmotuneError

LABEL_SET = "emoset"
OPTIONS = (  # anything else is a typo, reported (trust_pickle is the CLI flag, set for every dataset)
    "label_set", "trust_pickle")
SPLITS = {"train": "train", "val": "dev", "test": "test"}
ATTRIBUTES = ("brightness", "colorfulness", "object", "scene", "facial_expression", "human_action")


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmotuneError(f"unknown emoset option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    labels = load_label_set(LABEL_SET)
    found = False
    for name, split in SPLITS.items():
        path = root / f"{name}.json"
        if not path.exists():
            continue
        found = True
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            yield Problem(str(path), exc.lineno, f"not valid JSON ({exc.msg})")
            continue
        if not isinstance(entries, list):
            yield Problem(str(path), 1, "expected a list of [label, image path, annotation path]")
            continue
        for n, entry in enumerate(entries, 1):
            where = f"entry {n}"
            if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(x, str) for x in entry)):
                yield Problem(str(path), n, f"{where}: expected [label, image path, annotation path], got {str(entry)[:60]}")
                continue
            raw_label, image, annotation = entry
            label = labels.canonical(raw_label)
            if label is None:
                yield Problem(str(path), n, f"{where}: unknown label '{raw_label}' (EmoSet: {', '.join(labels.full)})")
                continue
            try:
                attrs = read_annotation(root, annotation, label)
            except ValueError as exc:
                yield Problem(str(path), n, f"{where}: {exc}")
                continue
            sample = Sample(id=Path(image).stem, dataset="emoset", label=label, labels=[label], image=image,
                            split=split, meta={"annotation": annotation, **attrs})
            yield Row(sample, str(path), n)
    if not found:
        yield Problem(str(root), None, "no EmoSet split files found (expected train.json, val.json, test.json)")


def read_annotation(root: Path, rel: str, label: str) -> dict:
    """The visual attributes of one image; ValueError says what is wrong with its annotation file."""
    try:
        path = safe_join(root, rel, where="annotation")
    except EmotuneError as exc:
        raise ValueError(str(exc)) from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"annotation file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    emotion = data.get("emotion")
    if emotion is not None and emotion != label:
        raise ValueError(f"{path}: emotion '{emotion}' differs from the split file's label '{label}'")
    return {k: data[k] for k in ATTRIBUTES if data.get(k) is not None}
