"""Dataset adapters: each reads a dataset exactly as its authors publish it and yields `Row`s.

An adapter module defines:
    LABEL_SET: str                      the label set its labels are canonicalised to
    def read(root: Path, options: dict) -> Iterator[Row | Problem]
A `Problem` is a row that could not be read (file + line + why); `prepare` decides whether that is fatal.
A `Skipped` is a row left out on purpose, with the reason; `prepare` counts them.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Optional

from emotune.data.sample import Sample
from emotune.errors import EmotuneError

SOURCES = {
    "ravdess": "emotune.data.sources.ravdess",
    "meld": "emotune.data.sources.meld",
    "goemotions": "emotune.data.sources.goemotions",
    "iemocap": "emotune.data.sources.iemocap",
    "mer": "emotune.data.sources.mer",
    "mer2023_text": "emotune.data.sources.mer2023_text",
    "merr": "emotune.data.sources.merr",
    "emoset": "emotune.data.sources.emoset",
    "fer2013": "emotune.data.sources.fer2013",
    "image_folder": "emotune.data.sources.image_folder",
    "table": "emotune.data.sources.table",
    "synthetic": "emotune.data.sources.synthetic",
}


@dataclasses.dataclass
class Row:
    sample: Sample
    file: str  # the published file this sample came from
    line: Optional[int] = None


@dataclasses.dataclass
class Skipped:
    """A row an adapter leaves out on purpose (e.g. an unlabelled table row): counted, never an error."""

    reason: str


def get_source(name: str) -> ModuleType:
    if name not in SOURCES:
        raise EmotuneError(f"unknown dataset '{name}'; known: {', '.join(sorted(SOURCES))}")
    return importlib.import_module(SOURCES[name])
