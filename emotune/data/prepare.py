"""prepare: a dataset as published → one validated manifest (and, with --skip-invalid, a report)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

from emotune.data.labels import is_file_ref, label_set_content, load_label_set
from emotune.data.sample import Problem, Sample, root_reference, validate, write_manifest
from emotune.data.sources import Row, Skipped, get_source
from emotune.errors import EmotuneError


class PrepareError(EmotuneError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more; --skip-invalid keeps the valid rows and writes a report)" if len(problems) > 1 else \
            " (--skip-invalid keeps the valid rows and writes a report)"
        super().__init__(f"{problems[0]}{more}")


def prepare(dataset: str, root: str | Path, out: Path, options: Optional[dict] = None, skip_invalid: bool = False,
            subset: str = "all", check_media: bool = True, log=print) -> dict:
    """`root` as the user named it: absolute, or relative (to the working directory or to EMOTUNE_DATA).
    The manifest records it absolute or relative to EMOTUNE_DATA (`root_reference`), so it can be moved."""
    source = get_source(dataset)
    root, root_ref = root_reference(root)
    if not root.exists():
        raise EmotuneError(f"dataset root not found: {root}")
    options = dict(options or {})
    # Adapters see label_set too: those serving several label sets (MER/MERR, table) canonicalise with it.
    label_set_name = options.get("label_set") or getattr(source, "LABEL_SET", None)
    if dataset == "meld" and options.get("label_field") == "Sentiment":
        label_set_name = "meld_sentiment"
    if not label_set_name:
        raise EmotuneError(f"dataset '{dataset}' needs a label set: --option label_set=NAME (e.g. mer, iemocap, emoset)")
    labels = load_label_set(label_set_name, subset)

    rows: list[Row] = []
    problems: list[Problem] = []
    skipped: Counter = Counter()
    for item in source.read(root, options):
        if isinstance(item, Problem):
            problems.append(item)
        elif isinstance(item, Skipped):
            skipped[item.reason] += 1
        else:
            rows.append(item)
    samples = [r.sample for r in rows]
    problems += validate(samples, root, labels, check_media=check_media, origins=[(r.file, r.line) for r in rows])

    bad_lines = {(p.file, p.line) for p in problems}
    # A whole-dataset problem (no line, e.g. "no files found") cannot be skipped.
    fatal = [p for p in problems if p.line is None and not any(r.file == p.file for r in rows)]
    if problems and (not skip_invalid or fatal or not rows):
        raise PrepareError(fatal or problems)
    kept = [r.sample for r in rows if (r.file, r.line) not in bad_lines and (r.file, None) not in bad_lines]

    # Map labels into the chosen subset; drop what falls outside, with a count (never silently).
    # Where the single label is the annotation of record (IEMOCAP's majority vote), a sample is in the
    # subset only when that label is: the IEMOCAP 4-class protocol drops frustrated and no-agreement turns
    # even when some evaluator also named an emotion of the subset. Elsewhere (GoEmotions) any label counts.
    by_label = getattr(source, "SUBSET_BY_LABEL", False)
    dropped: Counter = Counter()
    final: list[Sample] = []
    for s in kept:
        if subset != "all":
            original = s.label if s.label is not None else "(no label)"
            s.label = labels.to_subset(s.label)
            s.labels = labels.map_many(s.labels)
            s.soft = labels.map_soft(s.soft)
            if s.label is None and (by_label or not s.labels):
                dropped[original] += 1
                continue
        final.append(s)
    # A label set from the user's own file is stored by content: the manifest must not depend on where
    # that file was, or on the working directory prepare ran in.
    stored = label_set_content(label_set_name) if is_file_ref(label_set_name) else label_set_name
    n = write_manifest(out, dataset, root, stored, subset, final, root_ref=root_ref)
    report = {"dataset": dataset, "root": root_ref, "manifest": str(out), "written": n,
              "invalid": len(problems), "dropped_outside_subset": sum(dropped.values()),
              "dropped_by_label": dict(dropped), "skipped": dict(skipped)}
    if problems:
        report_path = Path(str(out) + ".invalid.txt")
        report_path.write_text("".join(f"{p}\n" for p in problems), encoding="utf-8")
        report["invalid_report"] = str(report_path)
        log(f"skipped {len(problems)} invalid row(s); see {report_path}")
    for reason, count in skipped.items():
        log(f"skipped {count} row(s): {reason}")
    if dropped:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
        log(f"dropped {sum(dropped.values())} sample(s) whose label is outside subset '{subset}' ({detail})")
    log(f"wrote {n} samples to {out}")
    return report

