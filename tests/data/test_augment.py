"""Speed-perturbed training copies (`emotune augment`, `data.augment`): real clips, the training side only."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from emotune.data.augment import augment_manifest, copies_of, read_copies
from emotune.data.sample import read_manifest, write_manifest
from emotune.errors import EmotuneError


@pytest.fixture(scope="module")
def ravdess_small(tmp_path_factory):
    """Two clips each of actors 1 and 2, from the real manifest."""
    from tests.conftest import data_dir

    from emotune.data.prepare import prepare

    root = data_dir("ravdess_speech")
    tmp = tmp_path_factory.mktemp("ravdess")
    prepare("ravdess", root, tmp / "all.jsonl", log=lambda *_: None)
    full = read_manifest(tmp / "all.jsonl")
    picked = [s for g in ("actor01", "actor02") for s in [s for s in full.samples if s.group == g][:2]]
    assert len(picked) == 4, {s.group for s in full.samples}
    write_manifest(tmp / "small.jsonl", full.dataset, full.root, full.label_set, full.subset, picked)
    return read_manifest(tmp / "small.jsonl")


def test_copies_are_resampled_clips_that_keep_label_group_and_source(ravdess_small, tmp_path):
    out = tmp_path / "speed.jsonl"
    assert augment_manifest(ravdess_small, [0.9, 1.1], out, log=lambda *_: None) == 8
    copies = read_copies(out, ravdess_small)
    by_id = ravdess_small.by_id()
    for c in copies.samples:
        src = by_id[c.meta["augment_of"]]
        assert (c.label, c.group, c.dataset) == (src.label, src.group, src.dataset)
        assert c.id == f"{src.id}~speed{c.meta['speed']:g}"
        original = sf.info(str(ravdess_small.media_path(src, "audio")))
        copy = sf.info(str(copies.media_path(c, "audio")))
        assert copy.samplerate == 16000
        # 0.9x speed lasts 1/0.9 as long (and is lower); 1.1x the other way
        assert copy.duration == pytest.approx(original.duration / c.meta["speed"], rel=0.01)
    # A second run keeps the files already written (a killed run resumes)
    first = copies.media_path(copies.samples[0], "audio")
    stamp = first.stat().st_mtime_ns
    augment_manifest(ravdess_small, [0.9, 1.1], out, log=lambda *_: None)
    assert first.stat().st_mtime_ns == stamp
    # copies_of keeps the training side's order and skips ids without copies
    train = [ravdess_small.samples[2].id, "not-there", ravdess_small.samples[0].id]
    assert [c.split("~")[0] for c in copies_of(train, copies)] == [train[0]] * 2 + [train[2]] * 2


def test_bad_factors_and_foreign_copies_are_refused(ravdess_small, tmp_path):
    for factors in ([1.0], [3.0], []):
        with pytest.raises(EmotuneError, match="speed factors"):
            augment_manifest(ravdess_small, factors, tmp_path / "x.jsonl", log=lambda *_: None)
    out = tmp_path / "speed.jsonl"
    augment_manifest(ravdess_small, [1.1], out, log=lambda *_: None)
    other = tmp_path / "other.jsonl"
    write_manifest(other, ravdess_small.dataset, ravdess_small.root, ravdess_small.label_set, ravdess_small.subset,
                   ravdess_small.samples[:1])
    with pytest.raises(EmotuneError, match=r"speed\.jsonl: sample .* is a copy of .* does not hold"):
        read_copies(out, read_manifest(other))


@pytest.mark.slow
def test_copies_join_training_sides_only(tmp_path):
    """End to end on the built-in corpus: folds as without copies; copies of training ids in training only."""
    from emotune.config import load_config
    from emotune.data.synth import build_corpus
    from emotune.experiments.run import ensure_manifest, fold_data, folds_for, load_inputs
    from emotune.identity import make_identity

    corpus = build_corpus(tmp_path / "c", speakers=3, log=lambda *_: None).root
    plain = [f"data.root={corpus}", f"data.manifest={tmp_path}/manifest.jsonl", "data.protocol=logo",
             "model.kind=baseline_lr", "model.inputs=[logmel]", "features.extractors=[logmel]",
             f"features.cache_dir={tmp_path}/cache"]
    base = load_config("configs/quickstart.yaml", plain)
    manifest = ensure_manifest(base)
    augment_manifest(manifest, [0.9], tmp_path / "speed.jsonl", log=lambda *_: None)
    cfg = load_config("configs/quickstart.yaml", [*plain, f"data.augment={tmp_path}/speed.jsonl"])
    folds = folds_for(cfg, manifest)
    assert [f.to_json() for f in folds] == [f.to_json() for f in folds_for(base, manifest)]
    feats, transcripts = load_inputs(cfg, manifest)
    fold = folds[0]
    data = fold_data(cfg, manifest, fold, feats, transcripts)
    copies = [i for i in data.train.ids if "~speed" in i]
    assert sorted(copies) == sorted(f"{i}~speed0.9" for i in fold.train)
    assert len(data.train) == 2 * len(fold.train)
    assert not any("~" in i for i in [*data.val.ids, *data.test.ids]) and data.val.ids and data.test.ids
    assert len(data.train.features["logmel"]) == len(data.train) and all(v is not None for v in data.train.features["logmel"])
    # The copies are part of the run's identity; a run without them keeps the identity it always had.
    with_copies, without = make_identity(cfg, fold.to_json()), make_identity(base, fold.to_json())
    assert "augment" in with_copies["data"] and "augment" not in without["data"]
    assert with_copies["data_hash"] != without["data_hash"]
    json.dumps(with_copies)


def test_cli_writes_copies_and_features_check_covers_them(ravdess_small, tmp_path):
    """`emotune augment`, then `emotune features RECIPE --check`: the copies are reported as not extracted yet
    (exit 1) under their own manifest, so a recipe with data.augment never trains on missing copies."""
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "emotune.cli", *a], capture_output=True, text=True, timeout=300)
    out = tmp_path / "speed.jsonl"
    done = run("augment", str(ravdess_small.path), "--speed", "1.1", "-o", str(out))
    assert done.returncode == 0 and "wrote 4 copies" in done.stdout, done.stderr
    recipe = ["configs/ravdess.yaml", f"data.manifest={ravdess_small.path}", "features.extractors=[egemaps]",
              f"features.cache_dir={tmp_path}/cache"]
    check = run("features", *recipe, f"data.augment={out}", "--check")
    assert check.returncode == 1 and f"coverage of {ravdess_small.path} in" in check.stdout, check.stdout
    assert f"coverage of {out} in" in check.stdout, check.stdout
    extract = run("features", *recipe, f"data.augment={out}")
    assert extract.returncode == 0, extract.stderr
    assert run("features", *recipe, f"data.augment={out}", "--check").returncode == 0
    bad = run("augment", str(ravdess_small.path), "--speed", "1", "-o", str(tmp_path / "bad.jsonl"))
    assert bad.returncode != 0 and "speed factors" in bad.stderr and "Traceback" not in bad.stderr
