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
