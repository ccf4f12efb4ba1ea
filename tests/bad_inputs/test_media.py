"""Bad media through a real feature run: every sample is either extracted or reported with a reason, the
run finishes, and a second run neither retries the recorded failures nor recomputes the rest.

Covered elsewhere and not repeated here: zero-byte, missing and truncated MP4 files at the decoder
(tests/features/test_media.py), recorded failures retried once the file changes (tests/features/test_store.py).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from emotune.cli import main
from emotune.data.sample import read_manifest
from emotune.media import MediaError
from emotune.media.audio import load_audio
from emotune.media.errors import TRUNCATED
from emotune.media.video import sample_frames

from .conftest import EXPECTED, TONE_HZ, UNREADABLE


def _features(capsys, corpus, cache, *extra) -> tuple[int, str]:
    code = main(["features", "--manifest", str(corpus["manifest"]), "--extractors", "logmel,fer", "--cache-dir", str(cache),
                 "--quiet", *extra])
    return code, capsys.readouterr().out


def _reasons(missing: dict) -> Counter:
    """Decoder messages vary by library version: count "unreadable audio (...)" under its prefix."""
    out: Counter = Counter()
    for reason, n in missing.items():
        out[UNREADABLE if reason.startswith(UNREADABLE) else reason] += n
    return out


def test_feature_run_goes_past_bad_media_and_reports_each_reason(corpus, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, out = _features(capsys, corpus, cache, "--json")
    assert code == 1  # the run goes past every bad file, then exits non-zero: samples have unreadable media
    summary = json.loads(out)

    expected = Counter(reason for _, _, reason in EXPECTED.values())
    ok = expected.pop("ok")
    logmel = summary["logmel"]
    assert logmel["done"] == ok and logmel["cached"] == 0
    assert _reasons(logmel["missing"]) == expected

    # Faces: the two decodable videos hold a test pattern, no face; audio-only samples have no picture at all.
    fer = summary["fer"]
    videos = [sid for sid, (field, _, _) in EXPECTED.items() if field == "video"]
    assert fer["done"] == 0
    assert fer["missing"] == {"no face found": 2, "no video or image in sample": len(EXPECTED) - len(videos),
                              "unreadable media (Invalid data found when processing input)": 1}

    # What was extracted is right: the 10-minute file gives finite statistics, the odd rates match 16 kHz.
    from emotune.features.store import load_features

    m = read_manifest(corpus["manifest"])
    feats = load_features(m, ["logmel"], cache)["logmel"]
    assert sorted(feats) == sorted(sid for sid, (_, _, r) in EXPECTED.items() if r == "ok")
    assert all(np.isfinite(v).all() and v.shape == (256,) for v in feats.values())
    assert np.argmax(feats["rate8k"][:64]) == np.argmax(feats["rate44k_stereo"][:64])  # the same tone: the same loudest band

    # The second run: recorded failures are not retried, nothing is recomputed, the table names every reason.
    code, out = _features(capsys, corpus, cache)
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("logmel"))
    assert row.split()[2:5] == ["0", str(ok), str(len(EXPECTED) - ok)]  # done, cached, missing
    for reason in expected:
        assert reason in row

    code, out = _features(capsys, corpus, cache, "--check", "--json")
    assert code == 1  # everything was tried (nothing left "not extracted"), but media are unreadable
    report = json.loads(out)["logmel"]
    assert report["present"] == ok and report["not_extracted"] == 0
    assert _reasons(report["missing"]) == expected


@pytest.mark.parametrize("name, rate_on_disk, channels", [("rate8k.wav", 8000, 1), ("rate44k_stereo.wav", 44100, 2)])
def test_other_rates_and_stereo_become_16k_mono_at_the_same_pitch(corpus, name, rate_on_disk, channels):
    import soundfile as sf

    info = sf.info(str(corpus["root"] / name))
    assert (info.samplerate, info.channels) == (rate_on_disk, channels)
    audio = load_audio(corpus["root"] / name)
    assert audio.dtype == np.float32 and audio.ndim == 1 and abs(len(audio) - 32000) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - TONE_HZ) < 1.0
    assert 0.25 < np.abs(audio[1000:-1000]).max() < 0.35  # channels averaged, not summed


def test_short_audio_limit_and_ten_minutes(corpus):
    assert len(load_audio(corpus["root"] / "short_0.1s.wav")) == 1600
    assert len(load_audio(corpus["root"] / "long_10min.wav")) == 600 * 16000


def test_renamed_files_decode_by_content_or_say_what_is_wrong(corpus):
    root = corpus["root"]
    renamed, original = load_audio(root / "wav_as.mp4"), load_audio(root / "rate8k.wav")
    assert len(renamed) == len(original) and np.corrcoef(renamed, original)[0, 1] > 0.99  # FFmpeg resamples it
    for name in ("video_as.wav", "text_as.flac", "cut_header.wav"):
        with pytest.raises(MediaError) as err:
            load_audio(root / name)
        assert err.value.reason.startswith(UNREADABLE) and name in str(err.value)
        assert str(root) not in err.value.reason  # the counted reason names no path
    with pytest.raises(MediaError, match="no video track"):
        sample_frames(root / "wav_as.mp4")


def test_a_partial_wav_copy_is_reported_not_read_short(corpus):
    root = corpus["root"]
    with pytest.raises(MediaError) as err:
        load_audio(root / "cut.wav")
    assert err.value.reason == TRUNCATED
    assert len(load_audio(root / "piped.wav")) == 16000  # a streamed WAV declares no length: read as is
