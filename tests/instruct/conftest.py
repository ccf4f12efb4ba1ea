"""RAVDESS actor 1 (60 clips) as a manifest, with eGeMAPS in the session's feature cache.

All 60 recordings are there because prosody is described against the speaker's own baseline; the
instruction tests then write records for a handful of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import data_dir

ACTOR = "actor01"


@pytest.fixture(scope="session")
def actor01(tmp_path_factory, emotune_cache) -> dict:
    from emotune.data.prepare import prepare
    from emotune.data.sample import read_manifest, write_manifest
    from emotune.features.store import ensure_features

    root = data_dir("ravdess_speech")
    tmp = tmp_path_factory.mktemp("instruct_data")
    prepare("ravdess", root, tmp / "all.jsonl", log=lambda *a: None)
    full = read_manifest(tmp / "all.jsonl")
    keep = [s for s in full.samples if s.group == ACTOR]
    path = tmp / "actor01.jsonl"
    write_manifest(path, "ravdess", root, full.label_set, full.subset, keep)
    manifest = read_manifest(path)
    cache = Path(emotune_cache) / "features"
    ensure_features(manifest, ["egemaps"], cache, progress=False, log=lambda *a: None)
    return {"manifest": path, "root": root, "cache": cache, "samples": manifest.samples}


def pick_ids(samples, emotions=("angry", "sad", "happy", "fearful"), intensity="strong") -> list[str]:
    """One clip per emotion (first statement, first repetition), so the records differ."""
    out = []
    for emo in emotions:
        for s in samples:
            if s.label == emo and s.meta.get("intensity") == intensity and s.meta.get("repetition") == 1:
                out.append(s.id)
                break
    return out


@pytest.fixture
def text_table(tmp_path) -> dict:
    """A small CSV of sentences with RAVDESS labels, prepared into a manifest by the real `table` adapter.

    Enough for the templated (categorical) kind and for runs that stop at the endpoint check; no dataset
    or feature cache needed.
    """
    from emotune.data.prepare import prepare

    root = tmp_path / "table"
    root.mkdir()
    rows = [("t1", "I can't believe you did that again!", "angry"), ("t2", "Everything is gone now.", "sad"),
            ("t3", "We won, we actually won!", "happy"), ("t4", "There's someone in the house.", "fearful"),
            ("t5", "The meeting is at noon.", "neutral"), ("t6", "That smell is revolting.", "disgust")]
    (root / "metadata.csv").write_text("id,text,label\n" + "".join(f'{i},"{t}",{lab}\n' for i, t, lab in rows))
    manifest = tmp_path / "table.jsonl"
    prepare("table", root, manifest, {"file": "metadata.csv", "text": "text", "label": "label", "label_set": "ravdess"},
            log=lambda *a: None)
    return {"root": root, "manifest": manifest, "ids": [r[0] for r in rows]}


def table_recipe(tmp_path: Path, table: dict, output: Path, **instruct) -> Path:
    """An instruct recipe over `text_table`, writing to `output`."""
    import yaml

    recipe = {"name": "instruct_table",
              "data": {"dataset": "table", "root": str(table["root"]), "manifest": str(table["manifest"]),
                       "label_set": "ravdess", "protocol": "stratified_kfold"},
              "instruct": {"output": str(output), "clues": [], **instruct}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path
