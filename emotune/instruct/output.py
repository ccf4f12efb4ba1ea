"""The files of `emotune instruct`: the instruction JSONL, its rejection log and its cumulative stats.

The JSONL files are only ever appended to, one whole line per write, so a run killed at any moment leaves
complete records (a torn last line is cut off when the file is next opened for writing).

`<output>.stats.json` keeps the history of every run on the same output, so a resumed run adds to the
counts of the runs before it instead of replacing them:

    {"about": "...", "output": ..., "runs": [<one entry per run: that run's own counts>],
     "totals": {<sums over all runs>}, "in_file": {<records in the output now, per kind>}}

A run's entry is saved when it starts, every few seconds while it runs and when it ends; its `status` is
"running", "finished", "failed: <why>" or "interrupted", and an entry still "running" when the next run
starts was killed ("killed": its counts are those of its last save).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Optional

from emotune.errors import EmotuneError

ABOUT = ("runs: one entry per run of `emotune instruct` on this output, each with that run's own counts; "
         "totals: the sums of the additive counts over all runs; in_file: the records the output holds now")
# Counts that add up across runs (the rest of a run entry describes that run's plan).
ADDITIVE = ("written", "filtered", "skipped", "unusable_replies", "llm")


def rejected_path(output: Path) -> Path:
    return output.with_name(output.name + ".rejected.jsonl")


def stats_path(output: Path) -> Path:
    return output.with_name(output.name + ".stats.json")


def _read_records(path: Path, repair: bool) -> tuple[set[str], Counter]:
    """Ids and per-kind counts of a JSONL output; a torn last line is ignored (and cut off if `repair`)."""
    ids: set[str] = set()
    by: Counter = Counter()
    if not path.exists():
        return ids, by
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        # A run killed mid-write leaves a partial last line: drop it (its record is redone).
        keep = data.rfind(b"\n") + 1
        if repair:
            with open(path, "r+b") as f:
                f.truncate(keep)
        data = data[:keep]
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            rid = obj["id"]
        except (ValueError, KeyError, TypeError):
            raise EmotuneError(f"{path}:{lineno}: not a record of this tool (bad JSON or no id); "
                               f"move the file away or choose another instruct.output") from None
        ids.add(rid)
        by[obj.get("kind") or obj.get("reason") or "?"] += 1
    return ids, by


def read_ids(path: Path) -> set[str]:
    """The ids already in a JSONL output, without creating or changing anything (to plan a run)."""
    return _read_records(Path(path), repair=False)[0]


class JsonlAppender:
    """An append-only JSONL file of records with unique `id`s; each record is one write of one line."""

    def __init__(self, path: Path, unique: bool = True):
        self.path = Path(path)
        self.unique = unique  # False: appending a known id again is a no-op (the rejection log)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ids, self.records_by = _read_records(self.path, repair=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict) -> None:
        if record["id"] in self.ids:
            if self.unique:
                raise RuntimeError(f"record {record['id']} written twice")
            return
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:  # a regular file takes the whole line at once; the loop only guards odd filesystems
            n = os.write(self._fd, view)
            view = view[n:]
        self.ids.add(record["id"])
        self.records_by[record.get("kind") or record.get("reason") or "?"] += 1

    def close(self) -> None:
        os.close(self._fd)


def _add(total: dict, part: dict) -> None:
    """total += part, key by key, through nested dicts; only numbers add up (a model name is per run)."""
    for k, v in part.items():
        if isinstance(v, dict):
            _add(total.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            total[k] = round(total.get(k, 0) + v, 1) if isinstance(v, float) else total.get(k, 0) + v


def _from_old_layout(old: dict) -> list[dict]:
    """A stats file of an earlier version held one run's counts at top level: that becomes the first run."""
    entry = {k: v for k, v in old.items() if k not in ("output", "in_file")}
    entry["status"] = "finished (recorded by an earlier version)"
    return [entry]


class RunStats:
    """The cumulative stats file of one output: earlier runs are read at start, this run's entry is added."""

    SAVE_EVERY_S = 2.0

    def __init__(self, output: Path):
        self.output = Path(output)
        self.path = stats_path(self.output)
        self.runs = self._load()
        self.entry: Optional[dict] = None
        self.totals: dict = {}
        self._saved_at = 0.0

    def _load(self) -> list[dict]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            runs = data["runs"] if "runs" in data else _from_old_layout(data)
            if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
                raise ValueError("'runs' is not a list of objects")
        except (ValueError, UnicodeDecodeError) as exc:
            raise EmotuneError(f"{self.path}: not a stats file of emotune instruct ({exc}); move it away to "
                               f"start a new count") from None
        for r in runs:
            if r.get("status") == "running":  # its process never reached the end: it was killed
                r["status"] = "killed (counts as of its last save)"
        return runs

    def start(self, entry: dict, in_file: dict) -> None:
        self.entry = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running", **entry}
        self.save(in_file, force=True)

    def save(self, in_file: dict, force: bool = False) -> None:
        """Write the file (atomically); without `force`, at most every SAVE_EVERY_S seconds."""
        now = time.monotonic()
        if not force and now - self._saved_at < self.SAVE_EVERY_S:
            return
        self._saved_at = now
        runs = self.runs + ([self.entry] if self.entry is not None else [])
        totals: dict = {"runs": len(runs), "seconds": 0.0}
        for r in runs:
            _add(totals, {k: r[k] for k in (*ADDITIVE, "seconds") if k in r})
        data = {"about": ABOUT, "output": str(self.output), "runs": runs, "totals": totals, "in_file": dict(in_file)}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
        self.totals = totals
