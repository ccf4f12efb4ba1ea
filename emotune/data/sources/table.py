"""Any table of samples (CSV, TSV or JSON lines) with a column mapping given as options.

    emotune prepare table DATA_ROOT -o m.jsonl --option file=metadata.csv --option id=file --option video=file \\
        --option audio=file --option label=label_from_docs --option text=english_subtitle_from_app_py \\
        --option label_set=mer

Options (values are column names unless said otherwise):
    file        the table, relative to the root (default: the only .csv/.tsv/.jsonl there)
    id          sample id (default: "id"); with `id_stem=true` a file-name column gives its bare stem
                (clips/a_001.mp4 → a_001)
    label       single label;  labels: multi-label, split on `label_sep` (default ",")
    text, audio, video, image, group, split      the matching sample fields; a media path is relative to
                the root (it may not climb out with ../) or absolute (kept absolute in the manifest)
    media_dir   folder (relative to the root) the media columns are relative to (default: the root)
    unlabelled  "skip" (default: rows with an empty label are left out, with a count) or "keep" (label null)
    label_set   the label set labels are canonicalised to (required: a table has no label set of its own):
                a built-in name, or your own YAML file by path (`labels: [bored, calm, ...]`, optional
                `aliases:` and `subsets:`), stored in the manifest by content
    delimiter   for a delimited file whose extension does not say (.csv comma, .tsv tab)
Every other column goes to meta.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterator, Optional

from emotune.data.labels import load_label_set
from emotune.data.sources import Skipped
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row
from emotune.errors import EmotuneError

LABEL_SET = None  # a table names its label set: --option label_set=NAME
COLUMN_OPTIONS = ("id", "label", "labels", "text", "audio", "video", "image", "group", "split")
OTHER_OPTIONS = ("file", "id_stem", "label_sep", "media_dir", "unlabelled", "label_set", "delimiter", "trust_pickle")
TABLE_EXT = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None}


def read(root: Path, options: dict) -> Iterator[Row | Problem | Skipped]:
    unknown = sorted(set(options) - set(COLUMN_OPTIONS) - set(OTHER_OPTIONS))
    if unknown:
        raise EmotuneError(f"unknown table option(s) {', '.join(unknown)}; known: {', '.join(COLUMN_OPTIONS + OTHER_OPTIONS)}")
    if not options.get("label_set"):
        raise EmotuneError("a table needs a label set: --option label_set=NAME (e.g. mer, ravdess, iemocap)")
    labels = load_label_set(str(options["label_set"]))
    unlabelled = str(options.get("unlabelled", "skip"))
    if unlabelled not in ("skip", "keep"):
        raise EmotuneError(f"option unlabelled must be 'skip' or 'keep', got '{unlabelled}'")
    columns = {k: str(options[k]) for k in COLUMN_OPTIONS if options.get(k) not in (None, "")}
    columns.setdefault("id", "id")
    sep = str(options.get("label_sep", ","))
    media_dir = str(options.get("media_dir", "")).strip("/")
    path = table_file(root, options.get("file"))
    delimited = path.suffix.lower() not in (".jsonl", ".ndjson")

    for line, row in table_rows(path, options.get("delimiter")):
        if isinstance(row, Problem):
            yield row
            continue
        missing = [f"'{c}' (option {k})" for k, c in columns.items() if c not in row]
        if missing:
            yield Problem(str(path), line, f"missing column {', '.join(missing)}; columns are: {', '.join(row)}")
            if delimited:  # the header (line 1) lacks it: one problem for the file, not one per row
                return
            continue
        if line == 1 and delimited:
            continue  # the header row, checked above
        value = {k: cell(row[c]) for k, c in columns.items()}
        many = row[columns["labels"]] if "labels" in columns else None  # a JSON list, or text split on label_sep
        many = many if isinstance(many, list) else cell(many).split(sep)
        raw = [cell(x) for x in many if cell(x)] + ([value["label"]] if value.get("label") else [])
        bad = [x for x in raw if labels.canonical(x) is None]
        if bad:
            yield Problem(str(path), line, f"unknown label '{bad[0]}' (label set {labels.name}: {', '.join(labels.full)})")
            continue
        label = labels.canonical(value["label"]) if value.get("label") else None
        named = {labels.canonical(x) for x in raw}
        multi = [n for n in labels.full if n in named]  # canonical order
        if label is None and len(multi) == 1:
            label = multi[0]
        if not multi and unlabelled == "skip":
            yield Skipped("no label (--option unlabelled=keep keeps such rows with label null)")
            continue
        # An absolute media path is kept as written (media_dir applies to relative ones only).
        media = {f: f"{media_dir}/{value[f]}" if media_dir and not os.path.isabs(value[f]) else value[f]
                 for f in ("audio", "video", "image") if value.get(f)}
        meta = {k: v for k, v in row.items() if k not in columns.values()}
        sid = Path(value["id"]).stem if options.get("id_stem") is True else value["id"]
        sample = Sample(id=sid, dataset="table", label=label, labels=multi, text=value.get("text", ""),
                        group=value.get("group") or None, split=(value.get("split") or "").lower() or None,
                        meta=meta, **media)
        yield Row(sample, str(path), line)


def cell(v) -> str:
    return "" if v is None else str(v).strip()


def table_file(root: Path, name: Optional[str]) -> Path:
    if name:
        path = root / str(name)
        if not path.is_file():
            raise EmotuneError(f"table file not found: {path}")
        return path
    found = sorted(p for p in root.iterdir() if p.suffix.lower() in TABLE_EXT) if root.is_dir() else []
    if len(found) != 1:
        which = f"found {', '.join(p.name for p in found)}" if found else "found none"
        raise EmotuneError(f"name the table with --option file=NAME (.csv, .tsv or .jsonl in {root}; {which})")
    return found[0]


def table_rows(path: Path, delimiter: Optional[str]) -> Iterator[tuple[int, dict | Problem]]:
    """(line, row as a dict) per row; a delimited file yields its header first, as line 1 {column: column}.

    A row that cannot be read is (line, Problem); a file that cannot be read at all raises EmotuneError.
    """
    ext = path.suffix.lower()
    line_no = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            if ext in (".jsonl", ".ndjson"):
                for line_no, text in enumerate(f, 1):
                    if not text.strip():
                        continue
                    try:
                        obj = json.loads(text)
                    except json.JSONDecodeError as exc:
                        yield line_no, Problem(str(path), line_no, f"not valid JSON ({exc.msg})")
                        continue
                    if not isinstance(obj, dict):
                        yield line_no, Problem(str(path), line_no, "expected a JSON object per line")
                        continue
                    yield line_no, obj
                return
            reader = csv.DictReader(f, delimiter=str(delimiter) if delimiter else TABLE_EXT.get(ext, ","))
            if not reader.fieldnames:
                raise EmotuneError(f"{path}:1: empty table (no header line)")
            yield 1, {c: c for c in reader.fieldnames}
            for row in reader:
                line_no = reader.line_num
                if None in row:  # more cells than the header has columns
                    yield line_no, Problem(str(path), line_no, f"{len(reader.fieldnames) + len(row[None])} cells "
                                                               f"for {len(reader.fieldnames)} columns")
                    continue
                yield line_no, row
    except UnicodeDecodeError as exc:
        raise EmotuneError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise EmotuneError(f"{path}:{line_no + 1}: malformed CSV ({exc})") from None
