"""GoEmotions (Demszky et al. 2020): {train,dev,test}.tsv = text<TAB>label ids<TAB>comment id.

Multi-label: `labels` holds every rated emotion, `label` the first one only when a row has exactly one
(single-label protocols then drop the ~16% multi-label rows with a count instead of guessing).
Split on tabs only: texts contain literal double quotes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row

LABEL_SET = "goemotions"
SPLITS = ("train", "dev", "test")


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    labels = load_label_set(LABEL_SET)
    emotions_file = root / "emotions.txt"
    if emotions_file.exists():
        published = [line.strip() for line in emotions_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if tuple(published) != labels.full:
            yield Problem(str(emotions_file), None, "emotion list differs from the GoEmotions release order")
            return
    found = False
    for split in SPLITS:
        path = root / f"{split}.tsv"
        if not path.exists():
            continue
        found = True
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != 3:
                    yield Problem(str(path), line_no, f"expected 3 tab-separated columns, got {len(parts)}")
                    continue
                text, ids, cid = parts
                names = [labels.canonical(i) for i in ids.split(",")]
                if not ids or None in names:
                    yield Problem(str(path), line_no, f"unknown label id(s) '{ids}'")
                    continue
                names = [n for n in labels.full if n in names]  # canonical order
                sample = Sample(id=cid, dataset="goemotions", label=names[0] if len(names) == 1 else None,
                                labels=names, text=text, group=None, split=split)
                yield Row(sample, str(path), line_no)
    if not found:
        yield Problem(str(root), None, "no GoEmotions TSVs found (expected train.tsv, dev.tsv, test.tsv)")
