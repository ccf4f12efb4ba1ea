"""RAVDESS (Livingstone & Russo 2018): labels live in the file name MM-VV-EE-II-SS-RR-AA.ext.

MM modality (01 full-AV, 02 video-only, 03 audio-only), VV channel (01 speech, 02 song), EE emotion,
II intensity (01 normal, 02 strong), SS statement, RR repetition, AA actor (odd male, even female).
Speech and song, audio and video files are all accepted; group = actor (speaker-independent folds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row

LABEL_SET = "ravdess"
AUDIO_EXT = {".wav", ".flac"}
VIDEO_EXT = {".mp4"}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
MODALITY = {"01": "audio-visual", "02": "video-only", "03": "audio-only"}
CHANNEL = {"01": "speech", "02": "song"}


def parse_name(stem: str) -> dict:
    """The 7 two-digit codes of a RAVDESS file name, checked; raises ValueError naming the bad code."""
    parts = stem.split("-")
    if len(parts) != 7 or not all(len(p) == 2 and p.isdigit() for p in parts):
        raise ValueError(f"file name '{stem}' is not MM-VV-EE-II-SS-RR-AA")
    mm, vv, ee, ii, ss, rr, aa = parts
    if mm not in MODALITY:
        raise ValueError(f"unknown modality code {mm}")
    if vv not in CHANNEL:
        raise ValueError(f"unknown vocal channel code {vv}")
    if ii not in ("01", "02"):
        raise ValueError(f"unknown intensity code {ii}")
    if ss not in STATEMENTS:
        raise ValueError(f"unknown statement code {ss}")
    if not 1 <= int(aa) <= 24:
        raise ValueError(f"actor {aa} outside 01-24")
    return {"modality": MODALITY[mm], "channel": CHANNEL[vv], "emotion_code": ee, "intensity": "strong" if ii == "02" else "normal",
            "statement": ss, "repetition": int(rr), "actor": int(aa), "gender": "male" if int(aa) % 2 else "female"}


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    labels = load_label_set(LABEL_SET)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXT | VIDEO_EXT and p.is_file())
    if not files:
        yield Problem(str(root), None, "no RAVDESS .wav/.flac/.mp4 files found (expected Actor_XX/MM-VV-EE-II-SS-RR-AA.wav)")
        return
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            code = parse_name(path.stem)
        except ValueError as exc:
            yield Problem(str(path), None, str(exc))
            continue
        label = labels.canonical(code["emotion_code"])
        if label is None:
            yield Problem(str(path), None, f"unknown emotion code {code['emotion_code']}")
            continue
        is_video = path.suffix.lower() in VIDEO_EXT
        sample = Sample(
            id=path.stem, dataset="ravdess", label=label, labels=[label],
            text=STATEMENTS[code["statement"]] if code["channel"] == "speech" else "",
            # An audio-visual .mp4 carries the audio track too; a video-only one has none.
            audio=None if code["modality"] == "video-only" else rel,
            video=rel if is_video else None,
            group=f"actor{code['actor']:02d}",
            meta={k: v for k, v in code.items() if k != "emotion_code"},
        )
        yield Row(sample, str(path))
