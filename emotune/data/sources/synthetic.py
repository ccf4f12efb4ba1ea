"""The built-in synthetic corpus (see emotune.data.synth): `metadata.csv` + one folder per speaker.

metadata.csv columns used: file (relative to the root), speaker, emotion, text, sentence_id, wording
(emotional: the sentence's words carry the emotion; ambiguous: the same words are spoken in every
emotion), plus speaker and prosody details kept in `meta`. group = speaker, so folds leave speakers out.
Generate the corpus with `emotune quickstart` or `emotune.data.synth.build_corpus(folder)`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row

LABEL_SET = "synthetic"
METADATA = "metadata.csv"
REQUIRED = ("file", "speaker", "emotion", "text")
META = ("sentence_id", "wording", "gender", "accent", "voice", "duration_s", "pitch", "range", "rate", "volume",
        "stress", "pause_ms")


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    labels = load_label_set(LABEL_SET)
    path = Path(root) / METADATA
    if not path.is_file():
        yield Problem(str(path), None, "not found: generate the synthetic corpus first "
                                       "(`emotune quickstart`, or emotune.data.synth.build_corpus)")
        return
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            yield Problem(str(path), None, f"missing column(s) {', '.join(missing)}")
            return
        for row in reader:
            line = reader.line_num
            empty = [c for c in REQUIRED if not (row.get(c) or "").strip()]
            if empty:
                yield Problem(str(path), line, f"empty {', '.join(empty)}")
                continue
            label = labels.canonical(row["emotion"])
            if label is None:
                yield Problem(str(path), line, f"unknown emotion '{row['emotion']}'")
                continue
            rel = row["file"].strip()
            sample = Sample(
                id=Path(rel).stem, dataset="synthetic", label=label, labels=[label], text=row["text"].strip(),
                audio=rel, group=row["speaker"].strip(),
                meta={k: row[k] for k in META if row.get(k) not in (None, "")},
            )
            yield Row(sample, str(path), line)
