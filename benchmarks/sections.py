"""BENCHMARKS.md sections written by the benchmark scripts.

A script rewrites its own `## title` section with what it measured. What people wrote under that section about
earlier runs (comparisons, other machines, why a target is met or not) must survive the rewrite, so everything from
the NOTES marker line to the section's end is kept as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

NOTES = "<!-- notes: kept when a benchmark script rewrites this section -->"


def replace_section(path: Path, title: str, body: list[str]) -> None:
    """Replace (or append) the `## title` section of `path`; other sections, and this one's notes, stay as they are."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\nLatest measured numbers; each section is written by its script in benchmarks/.\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text)
    notes = ""
    if found and NOTES in found.group(0):
        notes = found.group(0)[found.group(0).index(NOTES):].rstrip("\n") + "\n"
    section = "\n".join([f"## {title}", "", *body]) + "\n" + (f"\n{notes}" if notes else "")
    text = pattern.sub(lambda _: section + "\n", text) if found else text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
