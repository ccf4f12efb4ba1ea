"""MER2023 (Lian et al. 2023) and MERR (Emotion-LLaMA, Cheng et al. 2024): video clips with one label each.

The files, all relative to the root (names can be given with options; otherwise they are found):

    <annotation>.txt   one clip per line: `name n_frames label [valence]`, optionally a header line
                       (option `annotation=a.txt,b.txt`, or `train=...` / `test=...`; default: every .txt)
    <transcript>.csv   `name,sentence` (option `transcript=`; the text column: `text_column=`, default the
                       first of sentence / english / text / chinese)
    <merr>.json        MERR descriptions per clip: `caption`, `smp_reason_caption` → meta (option `merr_json=`)
    <feature dir>/<name>.npy   pre-extracted features, one folder per extractor → meta["features"]
                       (option `features=dirA,dirB`; default: every sub-folder holding .npy files)
    <video dir>/<name>.mp4 (or .avi)   option `video_dir=`; default: video/, videos/ or the root itself.
                       The clip's own audio track is the audio, unless `audio_dir=` holds <name>.wav files.

Labels: label set `mer` (6 classes) or `merr` (9) from options["label_set"]. The official split comes from
the annotation files: `train=` / `test=` options, else a file whose name says train / val / test
(`relative_train.txt`, `test3_label.txt`); `split=` names the split of a file that says neither.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Iterator, Optional

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row
from emotune.errors import EmotuneError

LABEL_SET = "mer"
OPTIONS = (  # anything else is a typo, reported (trust_pickle is the CLI flag, set for every dataset)
    "label_set", "annotation", "train", "dev", "test", "split", "transcript", "text_column", "merr_json",
    "features", "video_dir", "audio_dir", "trust_pickle")
VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov")
TEXT_COLUMNS = ("sentence", "english", "english_sentence", "text", "chinese")
NOT_ANNOTATIONS = re.compile(r"readme|licen[cs]e|eula", re.IGNORECASE)
SPLIT_WORDS = (("train", "train"), ("val", "dev"), ("dev", "dev"), ("test", "test"))
MERR_KEYS = ("caption", "smp_reason_caption")


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmotuneError(f"unknown mer option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    label_set = options.get("label_set") or LABEL_SET
    if label_set not in ("mer", "merr"):
        raise EmotuneError(f"MER reads label set 'mer' (6 classes) or 'merr' (9), not '{label_set}'")
    labels = load_label_set(label_set)
    annotations = annotation_files(root, options)
    if not annotations:
        yield Problem(str(root), None, "no MER annotation .txt found (lines 'name n_frames label valence'); "
                                       "name it with --option annotation=FILE")
        return
    texts, problems = read_transcript(root, options)
    yield from problems
    merr, problems = read_merr(root, options)
    yield from problems
    features = feature_dirs(root, options)
    videos = VideoFinder(root, options.get("video_dir"))
    audio_dir = options.get("audio_dir")

    for path, split in annotations:
        if not path.is_file():
            yield Problem(str(path), None, "annotation file not found")
            continue
        for line_no, fields in annotation_lines(path):
            if isinstance(fields, Problem):
                yield fields
                continue
            name, n_frames, raw_label, valence = fields
            label = labels.canonical(raw_label)
            if label is None:
                yield Problem(str(path), line_no, f"unknown label '{raw_label}' (label set {labels.name}: {', '.join(labels.full)})")
                continue
            video = videos.find(name)
            meta = {"n_frames": n_frames, "annotation": path.name}
            if valence is not None:
                meta["valence"] = valence
            meta.update(merr.get(name, {}))
            feats = {d: f"{rel}/{name}.npy" for d, (rel, stems) in features.items() if name in stems}
            if feats:
                meta["features"] = feats
            sample = Sample(id=name, dataset="mer", label=label, labels=[label], text=texts.get(name, ""),
                            video=video, audio=f"{audio_dir}/{name}.wav" if audio_dir else video, split=split,
                            meta=meta)
            yield Row(sample, str(path), line_no)


def split_of(name: str) -> Optional[str]:
    low = name.lower()
    for word, split in SPLIT_WORDS:
        if word in low:
            return split
    return None


def annotation_files(root: Path, options: dict) -> list[tuple[Path, Optional[str]]]:
    """(file, official split) for every annotation file, from the options or found in the root."""
    given = [(root / str(options[s]), s) for s in ("train", "dev", "test") if options.get(s)]
    if given:
        return given
    if options.get("annotation"):
        names = [n.strip() for n in str(options["annotation"]).split(",") if n.strip()]
        paths = [root / n for n in names]
    else:
        paths = sorted(p for p in root.glob("*.txt") if not NOT_ANNOTATIONS.search(p.name))
    return [(p, split_of(p.name) or options.get("split")) for p in paths]


def annotation_lines(path: Path) -> Iterator[tuple[int, tuple | Problem]]:
    """(line, (name, n_frames, label, valence or None)) per clip, or (line, Problem) for a malformed line."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        yield 0, Problem(str(path), None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        return
    for line_no, line in enumerate(lines, 1):
        parts = [p for p in re.split(r"[\s,]+", line.strip()) if p]
        if not parts:
            continue
        if line_no == 1 and parts[0].lower() in ("name", "names", "id", "video", "sample"):
            continue  # header
        if len(parts) not in (3, 4):
            yield line_no, Problem(str(path), line_no, f"expected 'name n_frames label [valence]', got {len(parts)} field(s)")
            continue
        try:
            n_frames = int(parts[1])
            valence = float(parts[3]) if len(parts) == 4 else None
        except ValueError:
            yield line_no, Problem(str(path), line_no, f"n_frames must be a whole number and valence a number: {line.strip()!r}")
            continue
        yield line_no, (parts[0], n_frames, parts[2], valence)


def read_transcript(root: Path, options: dict) -> tuple[dict[str, str], list[Problem]]:
    if options.get("transcript"):
        paths = [root / str(options["transcript"])]
    else:
        paths = sorted(root.glob("*.csv"))
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    for path in paths:
        if not path.is_file():
            problems.append(Problem(str(path), None, "transcript file not found"))
            continue
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                reader = csv.DictReader(f)
                columns = reader.fieldnames or []
                wanted = options.get("text_column")
                text_col = wanted if wanted else next((c for c in TEXT_COLUMNS if c in columns), None)
                missing = [c for c in ("name", text_col or "sentence") if c not in columns]
                if missing:
                    # A CSV found by search may be something else (a label table): only a named one must fit.
                    if options.get("transcript"):
                        problems.append(Problem(str(path), 1, f"missing column(s): {', '.join(missing)}"))
                    continue
                for row in reader:
                    texts[row["name"].strip()] = (row[text_col] or "").strip()
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(path), None, f"not UTF-8 text ({exc.reason}); save the transcript as UTF-8"))
    return texts, problems


def read_merr(root: Path, options: dict) -> tuple[dict[str, dict], list[Problem]]:
    """name → {caption, smp_reason_caption, merr: other fields} from MERR JSON (a dict by name, or a list)."""
    paths = [root / str(options["merr_json"])] if options.get("merr_json") else sorted(root.glob("*.json"))
    out: dict[str, dict] = {}
    problems: list[Problem] = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            problems.append(Problem(str(path), None, "MERR JSON not found"))
            continue
        except json.JSONDecodeError as exc:
            problems.append(Problem(str(path), exc.lineno, f"not valid JSON ({exc.msg})"))
            continue
        if isinstance(data, list):
            data = {str(d.get("name") or d.get("id")): d for d in data if isinstance(d, dict)}
        if not isinstance(data, dict):
            problems.append(Problem(str(path), 1, "expected MERR descriptions: an object keyed by clip name or a list"))
            continue
        for name, entry in data.items():
            if not isinstance(entry, dict):
                continue
            meta = out.setdefault(name, {})
            for key, value in entry.items():
                if key in MERR_KEYS:
                    meta[key] = value
                elif key not in ("name", "id"):
                    meta.setdefault("merr", {})[key] = value
    return out, problems


def feature_dirs(root: Path, options: dict) -> dict[str, tuple[str, set[str]]]:
    """folder name → (path relative to root, the clip names it holds a .npy for)."""
    if options.get("features"):
        dirs = [root / n.strip() for n in str(options["features"]).split(",") if n.strip()]
        missing = [d for d in dirs if not d.is_dir()]
        if missing:
            raise EmotuneError(f"feature folder not found: {missing[0]}")
    else:
        parents = [root] + ([root / "features"] if (root / "features").is_dir() else [])
        dirs = [d for p in parents for d in sorted(p.iterdir()) if d.is_dir()]
    out = {}
    for d in dirs:
        stems = {n[:-4] for n in os.listdir(d) if n.endswith(".npy")}
        if stems:
            out[d.name] = (d.relative_to(root).as_posix(), stems)
    return out


class VideoFinder:
    """Finds <name>.mp4/.avi in the video folder; a missing clip keeps its expected path so validation names it."""

    def __init__(self, root: Path, video_dir: Optional[str]):
        candidates = [root / video_dir] if video_dir else [root / "video", root / "videos", root]
        if video_dir and not candidates[0].is_dir():
            raise EmotuneError(f"video folder not found: {candidates[0]}")
        self.root = root
        self.files: dict[str, str] = {}
        self.home: Optional[str] = None  # where the release keeps its clips (None: a features-only copy)
        for d in (c for c in candidates if c.is_dir()):
            for n in sorted(os.listdir(d)):
                stem, ext = os.path.splitext(n)
                if ext.lower() in VIDEO_EXT:
                    self.files.setdefault(stem, (d / n).relative_to(root).as_posix())
                    if self.home is None:
                        self.home = d.relative_to(root).as_posix()

    def find(self, name: str) -> Optional[str]:
        if name in self.files:
            return self.files[name]
        if self.home is None:
            return None
        return f"{self.home}/{name}.mp4" if self.home != "." else f"{name}.mp4"
