"""A benchmark script rewrites its BENCHMARKS.md section and keeps the notes people wrote under it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_sections():
    spec = importlib.util.spec_from_file_location("sections", ROOT / "benchmarks" / "sections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rewrite_keeps_the_notes_and_the_other_sections(tmp_path):
    sections = load_sections()
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Training\n\nold training table\n\n## Evaluation\n\nold table\n\n"
                    f"{sections.NOTES}\n\nWhy the target is met on one CPU and not on another.\n\n## Load\n\nload table\n")
    sections.replace_section(path, "Evaluation", ["new table"])
    text = path.read_text()
    assert "old table" not in text and "new table" in text
    assert "Why the target is met on one CPU and not on another." in text
    assert text.index("new table") < text.index(sections.NOTES) < text.index("## Load")
    assert "old training table" in text and "load table" in text
    sections.replace_section(path, "Evaluation", ["newer table"])  # a second rewrite keeps them again
    assert text.replace("new table", "newer table") == path.read_text()


def test_a_section_without_notes_is_replaced_whole_and_a_new_one_appended(tmp_path):
    sections = load_sections()
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Evaluation\n\nold table\n\nold prose\n")
    sections.replace_section(path, "Evaluation", ["new table"])
    sections.replace_section(path, "Speed", ["speed table"])
    text = path.read_text()
    assert "old" not in text and text.index("new table") < text.index("## Speed") < text.index("speed table")
