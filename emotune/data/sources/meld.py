"""MELD (Poria et al. 2019): {train,dev,test}_sent_emo.csv, one utterance per row.

Dialogue id, utterance id (turn) and speaker go to meta so context-aware prompts can rebuild a
dialogue; group = dialogue (utterances of one dialogue never straddle a split). If the release's
video folders sit beside the CSVs (train_splits/dia{D}_utt{U}.mp4, ...), their paths are filled in.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row

LABEL_SET = "meld"
SPLITS = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
VIDEO_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
OPTIONS = ("label_field",)  # Emotion (7 classes, label set meld) or Sentiment (3, label set meld_sentiment)
REQUIRED = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    # label_field: Emotion (7 classes, label set meld) or Sentiment (3, label set meld_sentiment)
    field = options.get("label_field", "Emotion")
    labels = load_label_set("meld_sentiment" if field == "Sentiment" else LABEL_SET)
    found = False
    for split, name in SPLITS.items():
        path = root / name
        if not path.exists():
            continue
        found = True
        try:
            path.read_text(encoding="utf-8")  # checked whole first: a bad byte mid-file must not cut the split short
        except UnicodeDecodeError as exc:
            yield Problem(str(path), None, f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the CSV as UTF-8")
            continue
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                yield Problem(str(path), 1, f"missing column(s): {', '.join(missing)}")
                continue
            for row in reader:
                line = reader.line_num
                label = labels.canonical(row[field] or "")
                if label is None:
                    yield Problem(str(path), line, f"unknown {field.lower()} label '{row[field]}'")
                    continue
                try:
                    dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
                except ValueError:
                    yield Problem(str(path), line, f"Dialogue_ID/Utterance_ID not integers: {row['Dialogue_ID']!r}, {row['Utterance_ID']!r}")
                    continue
                video = f"{VIDEO_DIRS[split]}/dia{dia}_utt{utt}.mp4"
                sample = Sample(
                    id=f"{split}_dia{dia}_utt{utt}", dataset="meld", label=label, labels=[label],
                    text=(row["Utterance"] or "").strip(),
                    video=video if (root / video).exists() else None,
                    group=f"{split}_dia{dia}", split=split,
                    meta={"dialogue": dia, "turn": utt, "speaker": row["Speaker"], "sentiment": row["Sentiment"],
                          "emotion": row["Emotion"], "season": row.get("Season"), "episode": row.get("Episode"),
                          "start": row.get("StartTime"), "end": row.get("EndTime")},
                )
                yield Row(sample, str(path), line)
    if not found:
        yield Problem(str(root), None, f"no MELD CSVs found (expected {', '.join(SPLITS.values())})")
