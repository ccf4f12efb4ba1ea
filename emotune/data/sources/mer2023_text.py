"""MER2023 text only (Lian et al. 2023): the official label table and the subtitles, no media needed.

    label-6way.csv                        name, split (train / test1 / test2 / test3), emo, val (valence)
    transcription-engchi-polish.csv       name, chinese, english

(as in MERBench's dataset folder). `--option text=chinese` reads the Chinese subtitle instead of the
English one. A clip whose subtitle in that language is empty is skipped and counted (217 of 5,030 have
no English subtitle). The three test sets stay apart: split test1 (MER-MULTI), test2 (MER-NOISE) and
test3 (MER-SEMI); the official protocol makes one fold per test set, all with the same training side.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row, Skipped
from emotune.errors import EmotuneError

LABEL_SET = "mer"
OPTIONS = ("label_set", "labels", "transcript", "text", "trust_pickle")
SPLITS = ("train", "test1", "test2", "test3")


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            yield n, row


def read(root: Path, options: dict) -> Iterator[Row | Problem | Skipped]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmotuneError(f"unknown mer2023_text option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    labels_path = root / options.get("labels", "label-6way.csv")
    text_path = root / options.get("transcript", "transcription-engchi-polish.csv")
    column = options.get("text", "english")
    for path in (labels_path, text_path):
        if not path.exists():
            yield Problem(str(path), None, "file not found (expected MERBench's label-6way.csv and "
                                           "transcription-engchi-polish.csv; name them with --option labels=/transcript=)")
            return
    texts: dict[str, str] = {}
    for n, row in _rows(text_path):
        if column not in row:
            yield Problem(str(text_path), n, f"no column '{column}' (columns: {', '.join(row)})")
            return
        texts[row.get("name", "")] = (row[column] or "").strip()
    labels = load_label_set(options.get("label_set") or LABEL_SET)
    for n, row in _rows(labels_path):
        name, split, emo = ((row.get(k) or "").strip() for k in ("name", "split", "emo"))
        if not name:
            yield Problem(str(labels_path), n, "empty name")
            continue
        if split not in SPLITS:
            yield Problem(str(labels_path), n, f"{name}: unknown split '{split}' (expected {', '.join(SPLITS)})")
            continue
        label = labels.canonical(emo)
        if label is None:
            yield Problem(str(labels_path), n, f"{name}: unknown label '{emo}' ({', '.join(labels.full)})")
            continue
        text = texts.get(name)
        if text is None:
            yield Problem(str(labels_path), n, f"{name}: not in {text_path.name}")
            continue
        if not text:
            yield Skipped(f"no {column} subtitle")
            continue
        meta = {}
        try:
            meta["valence"] = float(row["val"]) if row.get("val") not in (None, "") else None
        except ValueError:
            yield Problem(str(labels_path), n, f"{name}: valence '{row['val']}' is not a number")
            continue
        yield Row(Sample(id=name, dataset="mer2023_text", label=label, labels=[label], text=text, split=split,
                         meta=meta), str(labels_path), n)
