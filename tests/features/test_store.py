"""The cache: what is computed once, what is recorded as missing and why, corruption, settings as keys."""

import os
import shutil

import numpy as np
import pytest

from emotune.data.sample import Sample
from emotune.errors import EmotuneError
from emotune.features.base import get_extractor, parse_spec, split_list
from emotune.features.cache import FeatureCache
from emotune.features.store import coverage, ensure_features, extract_one, load_features

from .conftest import make_manifest


def _samples():
    mk = lambda i, **kw: Sample(id=i, dataset="synthetic", **kw)
    return [mk("tone", audio="tone.wav"), mk("video", video="clip.mp4"), mk("empty", audio="empty.wav"),
            mk("cut", video="truncated.mp4"), mk("gone", audio="gone.wav"), mk("words", text="only text")]


def test_missing_media_is_recorded_not_fatal(media_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(media_dir, root)
    m = make_manifest(tmp_path / "m.jsonl", root, _samples())
    cache = tmp_path / "cache"
    s = ensure_features(m, ["egemaps"], cache, progress=False)["egemaps"]
    assert s["done"] == 2 and s["cached"] == 0
    assert s["missing"] == {"empty file (0 bytes)": 1, "file not found": 1, "no audio in sample": 1,
                            "unreadable media (Invalid data found when processing input)": 1}
    feats = load_features(m, ["egemaps"], cache)["egemaps"]
    assert sorted(feats) == ["tone", "video"] and feats["tone"].shape == (88,)

    # Recorded failures are not retried while the file is unchanged...
    again = ensure_features(m, ["egemaps"], cache, progress=False)["egemaps"]
    assert again["done"] == 0 and again["cached"] == 2 and again["missing"] == s["missing"]
    # A dataset copied or re-mounted (same bytes, new mtimes) keeps its features.
    os.utime(root / "tone.wav", ns=(1, 1))
    touched = ensure_features(m, ["egemaps"], cache, progress=False)["egemaps"]
    assert touched["done"] == 0 and touched["cached"] == 2
    # ...failures are retried once the file changes (new content = new fingerprint).
    shutil.copy(root / "tone.wav", root / "empty.wav")
    fixed = ensure_features(m, ["egemaps"], cache, progress=False)["egemaps"]
    assert fixed["done"] == 1 and fixed["cached"] == 2 and "empty file (0 bytes)" not in fixed["missing"]
    report = coverage(m, ["egemaps"], cache)["egemaps"]
    assert report["present"] == 3 and report["not_extracted"] == 0 and sum(report["missing"].values()) == 3


@pytest.mark.faults
def test_corrupt_shard_is_detected_and_rebuilt(media_dir, tmp_path, capsys):
    m = make_manifest(tmp_path / "m.jsonl", media_dir, [Sample(id=f"t{i}", dataset="synthetic", audio="tone.wav") for i in range(3)])
    cache = tmp_path / "cache"
    ensure_features(m, ["logmel"], cache, progress=False, flush_every=2)
    before = load_features(m, ["logmel"], cache)["logmel"]
    key = get_extractor("logmel").key
    shards = FeatureCache(cache).shard_files(key)
    assert len(shards) == 2
    data = bytearray(shards[0].read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor: the header still parses, the checksum must not
    shards[0].write_bytes(bytes(data))

    partial = load_features(m, ["logmel"], cache)["logmel"]
    assert sorted(partial) == ["t2"]  # the damaged shard's samples are not served
    assert "corrupt cache shard" in capsys.readouterr().err

    s = ensure_features(m, ["logmel"], cache, progress=False, log=lambda msg: None)["logmel"]
    assert s == {"done": 2, "cached": 1, "missing": {}, "modality": "audio", "failed": []}
    assert not shards[0].exists()
    after = load_features(m, ["logmel"], cache)["logmel"]
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.faults
def test_truncated_shard_and_leftover_temp_file(media_dir, tmp_path):
    m = make_manifest(tmp_path / "m.jsonl", media_dir, [Sample(id="t", dataset="synthetic", audio="tone.wav")])
    cache = tmp_path / "cache"
    ensure_features(m, ["logmel"], cache, progress=False)
    (shard,) = FeatureCache(cache).shard_files(get_extractor("logmel").key)
    shard.write_bytes(shard.read_bytes()[:100])
    shard_dir = shard.parent
    (shard_dir / ".tmp-123-abc-x.safetensors").write_bytes(b"half a file")  # a killed writer's leftover
    assert load_features(m, ["logmel"], cache)["logmel"] == {}
    assert ensure_features(m, ["logmel"], cache, progress=False, log=lambda msg: None)["logmel"]["done"] == 1
    assert "t" in load_features(m, ["logmel"], cache)["logmel"]


def test_settings_make_a_new_key_and_old_entries_stay(media_dir, tmp_path):
    m = make_manifest(tmp_path / "m.jsonl", media_dir, [Sample(id="t", dataset="synthetic", audio="tone.wav")])
    cache = tmp_path / "cache"
    assert get_extractor("logmel").key == get_extractor("logmel(n_mels=64)").key  # defaults spelled out
    assert get_extractor("logmel(n_mels=64)").spec == "logmel"
    ensure_features(m, ["logmel"], cache, progress=False)
    s = ensure_features(m, ["logmel(n_mels=32)"], cache, progress=False)["logmel(n_mels=32)"]
    assert s["done"] == 1
    both = load_features(m, ["logmel", "logmel(n_mels=32)"], cache)
    assert both["logmel"]["t"].shape == (256,) and both["logmel(n_mels=32)"]["t"].shape == (128,)
    assert len(FeatureCache(cache).keys()) == 2
    assert np.allclose(extract_one("logmel(n_mels=32)", m.samples[0], m.root), both["logmel(n_mels=32)"]["t"])


def test_specs_and_their_errors():
    assert split_list("egemaps, whisper_seq(k=4,x=1),hf:org/m(pool=mean)") == ["egemaps", "whisper_seq(k=4,x=1)", "hf:org/m(pool=mean)"]
    assert parse_spec("whisper_seq(k=4)") == ("whisper_seq", {"k": 4})
    assert parse_spec("hf:org/model(pool=mean)") == ("hf", {"model": "org/model", "pool": "mean"})
    with pytest.raises(EmotuneError, match="unknown extractor 'wisper'"):
        parse_spec("wisper")
    with pytest.raises(EmotuneError, match="unknown setting.*n_mel.*known: hop_ms, n_mels, trim, win_ms"):
        get_extractor("logmel(n_mel=3)")
    with pytest.raises(EmotuneError, match="n_mels=.*should be int"):
        get_extractor("logmel(n_mels=many)")


def test_extract_one_names_the_problem(media_dir):
    with pytest.raises(EmotuneError, match="empty.wav: empty file"):
        extract_one("egemaps", Sample(id="e", dataset="x", audio="empty.wav"), media_dir)


def test_worker_processes_give_the_same_cache(media_dir, tmp_path):
    samples = [Sample(id=f"t{i}", dataset="synthetic", audio="tone.wav" if i % 3 else "tone44k.flac") for i in range(6)]
    samples.append(Sample(id="e", dataset="synthetic", audio="empty.wav"))
    m = make_manifest(tmp_path / "m.jsonl", media_dir, samples)
    s2 = ensure_features(m, ["egemaps"], tmp_path / "two", workers=2, progress=False, flush_every=2)["egemaps"]
    s1 = ensure_features(m, ["egemaps"], tmp_path / "one", workers=1, progress=False)["egemaps"]
    assert s1 == s2 == {"done": 6, "cached": 0, "missing": {"empty file (0 bytes)": 1}, "modality": "audio",
                        "failed": [{"path": str(media_dir / "empty.wav"), "reason": "empty file (0 bytes)"}]}
    a, b = (load_features(m, ["egemaps"], tmp_path / d)["egemaps"] for d in ("one", "two"))
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert len(FeatureCache(tmp_path / "two").shard_files(get_extractor("egemaps").key)) == 4  # one per chunk of 2


def test_datasets_apart_and_small_shards_merged(media_dir, tmp_path, monkeypatch):
    import emotune.features.cache as cache_mod

    key = get_extractor("logmel").key
    cache = tmp_path / "cache"
    a = make_manifest(tmp_path / "a.jsonl", media_dir, [Sample(id=f"a{i}", dataset="alpha", audio="tone.wav") for i in range(5)]
                      + [Sample(id="gone", dataset="alpha", audio="gone.wav")])
    b = make_manifest(tmp_path / "b.jsonl", media_dir, [Sample(id="b0", dataset="beta", audio="tone.wav")])
    ensure_features(a, ["logmel"], cache, progress=False, flush_every=1)
    ensure_features(b, ["logmel"], cache, progress=False)
    fc = FeatureCache(cache)
    assert len(fc.shard_files(key, {"alpha"})) == 6 and len(fc.shard_files(key, {"beta"})) == 1
    before = load_features(a, ["logmel"], cache)["logmel"]

    monkeypatch.setattr(cache_mod, "COMPACT_AT", 3)
    assert ensure_features(a, ["logmel"], cache, progress=False)["logmel"]["cached"] == 5
    assert len(fc.shard_files(key, {"alpha"})) == 1 and len(fc.shard_files(key, {"beta"})) == 1
    after = load_features(a, ["logmel"], cache)["logmel"]
    assert sorted(after) == sorted(before) and all(np.array_equal(after[k], before[k]) for k in before)
    again = ensure_features(a, ["logmel"], cache, progress=False)["logmel"]
    assert again["done"] == 0 and again["missing"] == {"file not found": 1}  # the recorded miss survived the merge
    assert "b0" in load_features(b, ["logmel"], cache)["logmel"]
