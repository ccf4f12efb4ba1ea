"""The bad-input corpus, generated on the spot (numpy + soundfile + ffmpeg's lavfi sources): media at odd
sample rates and lengths, truncated, empty and renamed files, a video without sound and one without a
face, and a manifest over them that also points outside its root. `EXPECTED` says what each sample
should give the log-mel extractor: "ok" or the reason it is reported missing."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from emotune.data.sample import Sample, write_manifest
from emotune.media.errors import TRUNCATED

TONE_HZ = 440.0
UNREADABLE = "unreadable audio"  # prefix: the rest is the decoder's own words

# sample id -> (manifest field, path relative to the root, what logmel gives)
EXPECTED = {
    "rate8k": ("audio", "rate8k.wav", "ok"),
    "rate44k_stereo": ("audio", "rate44k_stereo.wav", "ok"),
    "short_0.1s": ("audio", "short_0.1s.wav", "ok"),
    "short_0.05s": ("audio", "short_0.05s.wav", "audio shorter than 0.1 s"),
    "long_10min": ("audio", "long_10min.wav", "ok"),
    "piped_wav": ("audio", "piped.wav", "ok"),  # no length in its header: not mistaken for a truncated file
    "empty": ("audio", "empty.wav", "empty file (0 bytes)"),
    "cut_wav": ("audio", "cut.wav", TRUNCATED),
    "cut_wav_header": ("audio", "cut_header.wav", UNREADABLE),
    "video_named_wav": ("audio", "video_as.wav", UNREADABLE),
    "text_named_flac": ("audio", "text_as.flac", UNREADABLE),
    "wav_named_mp4": ("audio", "wav_as.mp4", "ok"),
    "no_audio_track": ("video", "no_audio.mp4", "no audio track"),
    "no_face": ("video", "no_face.mp4", "ok"),
    "cut_mp4": ("video", "cut.mp4", "unreadable media (Invalid data found when processing input)"),
    "gone": ("audio", "gone.wav", "file not found"),
    "escapes_root": ("audio", "../../etc/passwd", "media path outside the dataset root"),
    # an absolute path is taken as written (a table may keep its media anywhere): this one is not audio
    "absolute_path": ("audio", "/etc/passwd", "unreadable media (Invalid data found when processing input)"),
}


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    x = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def ffmpeg(*args: str) -> None:
    if not shutil.which("ffmpeg"):
        pytest.skip("needs the ffmpeg command (make setup installs it)")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict:
    import soundfile as sf

    base = tmp_path_factory.mktemp("bad_inputs")
    root = base / "data"
    root.mkdir()
    sf.write(root / "rate8k.wav", tone(2.0, 8000), 8000, subtype="PCM_16")
    sf.write(root / "rate44k_stereo.wav", tone(2.0, 44100, channels=2), 44100, subtype="PCM_16")
    sf.write(root / "short_0.1s.wav", tone(0.1, 16000), 16000)
    sf.write(root / "short_0.05s.wav", tone(0.05, 16000), 16000)
    # Ten minutes cheaply: one second of tone repeated (the float sine over 9.6 M samples is the slow part).
    sf.write(root / "long_10min.wav", np.tile(tone(1.0, 16000), 600), 16000, subtype="PCM_16")
    (root / "empty.wav").write_bytes(b"")
    wav = (root / "rate8k.wav").read_bytes()
    (root / "cut.wav").write_bytes(wav[: len(wav) // 2])  # a partial copy: the header promises twice as much
    (root / "cut_header.wav").write_bytes(wav[:30])
    (root / "wav_as.mp4").write_bytes(wav)
    (root / "text_as.flac").write_text("these are not audio samples\n")
    lavfi = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2"]
    ffmpeg(*lavfi, "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(root / "no_audio.mp4"))
    with open(root / "piped.wav", "wb") as f:  # written to a pipe: the data size field holds a placeholder
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"sine=frequency={TONE_HZ}:duration=1",
                        "-f", "wav", "pipe:1"], stdout=f, check=True)
    ffmpeg(*lavfi, "-f", "lavfi", "-i", f"sine=frequency={TONE_HZ}:duration=2", "-shortest", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-c:a", "aac", str(root / "no_face.mp4"))
    mp4 = (root / "no_face.mp4").read_bytes()
    (root / "video_as.wav").write_bytes(mp4)
    (root / "cut.mp4").write_bytes(mp4[: len(mp4) // 2])  # the index (moov) is at the end: nothing decodes

    samples = [Sample(id=sid, dataset="bad", **{field: rel}) for sid, (field, rel, _) in EXPECTED.items()]
    manifest = base / "bad.jsonl"
    write_manifest(manifest, "bad", root, "ravdess", "all", samples)
    return {"root": root, "manifest": manifest}
