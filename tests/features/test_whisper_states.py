"""One Whisper encoder pass per clip across runs (cached `whisper_states`), and `trim=silence` for audio extractors."""

import numpy as np
import pytest

from emotune.data.sample import Sample
from emotune.errors import EmotuneError
from emotune.features.audio import load_clip
from emotune.features.base import Source, get_extractor
from emotune.features.store import ensure_features, load_features
from emotune.features.whisper import WhisperBackend
from emotune.media.audio import SAMPLE_RATE, load_audio, trim_silence, trim_to_speech

from .conftest import make_manifest


def _tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.cos(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _padded(seconds: float = 1.0, pad: float = 1.0, freq: float = 220.0) -> np.ndarray:
    """A tone with `pad` seconds of digital silence on each side, like a RAVDESS clip."""
    zeros = np.zeros(int(pad * SAMPLE_RATE), np.float32)
    return np.concatenate([zeros, _tone(seconds, freq), zeros])


@pytest.fixture
def clips(tmp_path):
    import soundfile as sf

    root = tmp_path / "media"
    root.mkdir()
    for i, freq in enumerate([180.0, 260.0, 340.0]):
        sf.write(root / f"c{i}.wav", _padded(1.0 + 0.3 * i, 0.5, freq), SAMPLE_RATE)
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file" * 10)
    samples = [Sample(id=f"c{i}", dataset="synthetic", label="neutral", audio=f"c{i}.wav") for i in range(3)]
    samples.append(Sample(id="broken", dataset="synthetic", label="neutral", audio="broken.wav"))
    return make_manifest(tmp_path / "m.jsonl", root, samples)


@pytest.fixture
def encoder_calls(monkeypatch):
    """How many times the Whisper encoder ran (WhisperBackend.encode with clips not in its memo)."""
    calls = []
    real = WhisperBackend.encode

    def counting(self, sources, audios=None, trim="none", layer=-1):
        before = self.encoded
        out = real(self, sources, audios, trim, layer)
        calls.extend([len(sources)] * (self.encoded - before))
        return out

    monkeypatch.setattr(WhisperBackend, "encode", counting)
    return calls


@pytest.mark.slow
def test_second_whisper_extractor_reads_the_cached_states(clips, tmp_path, encoder_calls):
    cache = tmp_path / "cache"
    first = ensure_features(clips, ["whisper"], cache, progress=False)
    assert list(first) == ["whisper"]  # the states are cached on the side, not reported as an extractor
    assert first["whisper"]["done"] == 3 and sum(first["whisper"]["missing"].values()) == 1
    assert encoder_calls

    WhisperBackend.forget()  # a new process: no encoder states remembered in memory
    encoder_calls.clear()
    second = ensure_features(clips, ["whisper_seq(k=4)", "whisper(pool=mean)"], cache, progress=False)
    assert encoder_calls == []  # derived from the cached states: no encoder pass
    assert second["whisper_seq(k=4)"]["done"] == 3 and second["whisper(pool=mean)"]["done"] == 3
    # The broken clip's reason comes from the states' cached Missing, not from reading it again.
    assert list(second["whisper_seq(k=4)"]["missing"]) == list(first["whisper"]["missing"])

    feats = load_features(clips, ["whisper", "whisper_seq(k=4)", "whisper(pool=mean)", "whisper_states"], cache)
    assert set(feats["whisper_seq(k=4)"]) == {"c0", "c1", "c2"}
    # The same numbers as a direct computation from a fresh encoder pass.
    sources = [Source.of_file(clips.root / f"c{i}.wav") for i in range(3)]
    direct = get_extractor("whisper").backend().encode(sources)
    seq = get_extractor("whisper_seq(k=4)")
    for i, states in enumerate(direct):
        sid = f"c{i}"
        assert np.array_equal(feats["whisper_states"][sid], states)  # float32, as the encoder gave them
        assert np.allclose(feats["whisper_seq(k=4)"][sid], seq.pool(states), rtol=1e-6, atol=1e-6)
        assert np.array_equal(feats["whisper"][sid], np.concatenate([states.mean(0), states.std(0)]))
        assert np.array_equal(feats["whisper(pool=mean)"][sid], feats["whisper"][sid][:384])

    # Everything cached: the states' shards are not even read.
    encoder_calls.clear()
    again = ensure_features(clips, ["whisper", "whisper_seq(k=4)"], cache, progress=False)
    assert encoder_calls == [] and all(r["done"] == 0 and r["cached"] == 3 for r in again.values())


def test_whisper_keys_and_settings():
    # Settings added later leave the cache keys of existing features as they were.
    assert get_extractor("whisper").key == "whisper-v1-ad236fd98126"
    assert get_extractor("whisper_seq").key == "whisper_seq-v1-b6a5bfd5fb3a"
    assert get_extractor("egemaps").key == "egemaps-v1-b5876ef40dbc"
    assert get_extractor("logmel").key == "logmel-v1-6d90e804400c"
    assert get_extractor("asr").key == "asr-v2-0fa1ab575b49"
    assert get_extractor("whisper(pool=mean)").shape() == (384,)
    assert get_extractor("whisper(pool=mean)").key != get_extractor("whisper").key
    # Every Whisper feature of a clip shares one upstream; trimming changes the states, so it keys them too.
    assert get_extractor("whisper").upstream() == get_extractor("whisper_seq(k=4)").upstream() == "whisper_states"
    assert get_extractor("whisper(trim=silence)").upstream() == "whisper_states(trim=silence)"
    with pytest.raises(EmotuneError, match="pool must be one of"):
        get_extractor("whisper(pool=max)")


def test_trim_cuts_the_silence_and_keeps_the_tone():
    tone = _tone(1.0, 220.0)
    audio = _padded(1.0, 1.0, 220.0)
    trimmed = trim_silence(audio)
    assert len(tone) <= len(trimmed) < len(tone) + 0.05 * SAMPLE_RATE  # within two 25-ms frames of the tone
    start = int(np.flatnonzero(trimmed)[0])
    assert np.array_equal(trimmed[start: start + len(tone)], tone)  # the tone itself untouched
    # Low background noise (60 dB under the tone) counts as silence too.
    noisy = audio + np.random.default_rng(0).normal(0, 3e-4, audio.size).astype(np.float32)
    assert len(trim_silence(noisy)) < len(tone) + 0.05 * SAMPLE_RATE


def test_trim_keeps_silent_and_tiny_clips():
    silent = np.zeros(2 * SAMPLE_RATE, np.float32)
    assert np.array_equal(trim_silence(silent), silent)  # nothing to measure against: left as it is
    assert np.array_equal(trim_to_speech(silent), silent)  # no speech found: left as it is
    click = np.zeros(2 * SAMPLE_RATE, np.float32)
    click[SAMPLE_RATE] = 1.0
    kept = trim_silence(click)
    assert len(kept) == int(0.25 * SAMPLE_RATE) and kept.max() == 1.0  # a minimum length, around the click
    assert trim_silence(np.ones(100, np.float32)).size == 100  # shorter than one frame


def test_trim_setting_keys_the_cache(tmp_path):
    import soundfile as sf

    for name in ["egemaps", "logmel", "whisper", "whisper_seq", "asr"]:
        assert get_extractor(f"{name}(trim=silence)").key != get_extractor(name).key
        assert get_extractor(f"{name}(trim=speech)").key not in (get_extractor(name).key, get_extractor(f"{name}(trim=silence)").key)
        assert get_extractor(f"{name}(trim=none)").key == get_extractor(name).key
    with pytest.raises(EmotuneError, match="trim must be one of"):
        get_extractor("egemaps(trim=vad)")

    sf.write(tmp_path / "padded.wav", _padded(1.0, 1.0), SAMPLE_RATE)
    sf.write(tmp_path / "silent.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    src, silent = Source.of_file(tmp_path / "padded.wav"), Source.of_file(tmp_path / "silent.wav")
    assert len(load_clip(src)) == 3 * SAMPLE_RATE and len(load_clip(src, "silence")) < 1.05 * SAMPLE_RATE
    assert len(load_clip(silent, "silence")) == SAMPLE_RATE

    samples = [Sample(id=n, dataset="synthetic", label="neutral", audio=f"{n}.wav") for n in ("padded", "silent")]
    m = make_manifest(tmp_path / "m.jsonl", tmp_path, samples)
    cache = tmp_path / "cache"
    for spec in ["logmel", "logmel(trim=silence)", "egemaps(trim=silence)"]:
        ensure_features(m, [spec], cache, progress=False)  # a silent clip is Missing or a value, never a crash
    feats = load_features(m, ["logmel", "logmel(trim=silence)"], cache)
    assert not np.allclose(feats["logmel"]["padded"], feats["logmel(trim=silence)"]["padded"])


def test_trim_a_ravdess_clip_to_its_sentence(ravdess_root):
    # 3.3 s with ~1 s of near-silence at each end; the sentence itself lasts about 1.5 s.
    audio = load_audio(ravdess_root / "Actor_01/03-01-01-01-01-01-01.flac")
    for trim in (trim_silence, trim_to_speech):
        kept = trim(audio)
        assert 1.2 * SAMPLE_RATE < len(kept) < 1.8 * SAMPLE_RATE, trim.__name__
        assert np.abs(kept).max() == np.abs(audio).max()  # the loudest part is inside what is kept


def test_cached_arrays_are_read_when_used(tmp_path):
    from emotune.features.base import Output
    from emotune.features.cache import FeatureCache, Record, Stored
    from emotune.features.runner import _derive

    cache = FeatureCache(tmp_path)
    states = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    [shard] = cache.write_shard("k", [Record("synthetic/a", "fp", Output(states))])
    ref = cache.scan("k", arrays=False).get("synthetic/a", "fp").value
    assert isinstance(ref, Stored) and np.array_equal(ref.load(), states)
    pooled = get_extractor("whisper(pool=mean)")
    assert np.array_equal(_derive(pooled, Output(ref)).value, states.mean(0))
    shard.unlink()  # merged away by another process since the run was planned: computed again instead
    assert _derive(pooled, Output(ref)) is None
