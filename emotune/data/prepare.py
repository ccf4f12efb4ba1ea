"""prepare: a dataset as published → one validated manifest (and, with --skip-invalid, a report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample, validate, write_manifest
from emotune.data.sources import Row, get_source
from emotune.errors import EmotuneError


class PrepareError(EmotuneError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more; --skip-invalid keeps the valid rows and writes a report)" if len(problems) > 1 else \
            " (--skip-invalid keeps the valid rows and writes a report)"
        super().__init__(f"{problems[0]}{more}")


def prepare(dataset: str, root: Path, out: Path, options: Optional[dict] = None, skip_invalid: bool = False,
            subset: str = "all", check_media: bool = True, log=print) -> dict:
    source = get_source(dataset)
    root = Path(root)
    if not root.exists():
        raise EmotuneError(f"dataset root not found: {root}")
    options = dict(options or {})
    label_set_name = options.pop("label_set", None) or getattr(source, "LABEL_SET")
    if dataset == "meld" and options.get("label_field") == "Sentiment":
        label_set_name = "meld_sentiment"
    labels = load_label_set(label_set_name, subset)

    rows: list[Row] = []
    problems: list[Problem] = []
    for item in source.read(root, options):
        (problems if isinstance(item, Problem) else rows).append(item)
    samples = [r.sample for r in rows]
    problems += validate(samples, root, labels, check_media=check_media, origins=[(r.file, r.line) for r in rows])

    bad_lines = {(p.file, p.line) for p in problems}
    # A whole-dataset problem (no line, e.g. "no files found") cannot be skipped.
    fatal = [p for p in problems if p.line is None and not any(r.file == p.file for r in rows)]
    if problems and (not skip_invalid or fatal or not rows):
        raise PrepareError(fatal or problems)
    kept = [r.sample for r in rows if (r.file, r.line) not in bad_lines and (r.file, None) not in bad_lines]

    # Map labels into the chosen subset; drop what falls outside, with a count (never silently).
    dropped = 0
    final: list[Sample] = []
    for s in kept:
        if subset != "all":
            s.label = labels.to_subset(s.label)
            s.labels = labels.map_many(s.labels)
            s.soft = labels.map_soft(s.soft)
            if s.label is None and not s.labels:
                dropped += 1
                continue
        final.append(s)
    n = write_manifest(out, dataset, root, label_set_name, subset, final)
    report = {"dataset": dataset, "root": str(root), "manifest": str(out), "written": n,
              "invalid": len(problems), "dropped_outside_subset": dropped}
    if problems:
        report_path = Path(str(out) + ".invalid.txt")
        report_path.write_text("".join(f"{p}\n" for p in problems), encoding="utf-8")
        report["invalid_report"] = str(report_path)
        log(f"skipped {len(problems)} invalid row(s); see {report_path}")
    if dropped:
        log(f"dropped {dropped} sample(s) whose label is outside subset '{subset}'")
    log(f"wrote {n} samples to {out}")
    return report


def summary_json(report: dict) -> str:
    return json.dumps(report, indent=2)
