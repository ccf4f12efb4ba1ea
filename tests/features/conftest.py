"""Small media made on the spot (tones, a test-pattern video, broken files) and manifests over them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emotune.data.sample import Sample, read_manifest, write_manifest


def _ffmpeg(*args: str) -> None:
    if not shutil.which("ffmpeg"):
        pytest.skip("needs the ffmpeg command (make setup installs it)")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    import soundfile as sf

    d = tmp_path_factory.mktemp("media")
    sr = 16000
    t = np.arange(int(2.0 * sr)) / sr
    # A gliding, amplitude-modulated tone: voiced-like enough for pitch and loudness functionals.
    tone = 0.3 * np.sin(2 * np.pi * (180 + 40 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    sf.write(d / "tone.wav", tone.astype(np.float32), sr)
    sf.write(d / "tone44k.flac", np.repeat(tone, 2)[: int(2.0 * 32000)].astype(np.float32), 32000)
    (d / "empty.wav").write_bytes(b"")
    (d / "garbage.wav").write_bytes(b"RIFF not really a wave file" * 10)
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=300",
            "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(d / "clip.mp4"))
    data = (d / "clip.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # index (moov) at the end: unreadable
    _ffmpeg("-i", str(d / "clip.mp4"), "-c", "copy", "-movflags", "faststart", str(d / "faststart.mp4"))
    data = (d / "faststart.mp4").read_bytes()
    (d / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])  # index first: decodes, but cut short
    return d


def make_manifest(path: Path, root: Path, samples: list[Sample], dataset: str = "synthetic"):
    write_manifest(path, dataset, root, "ravdess", "all", samples)
    return read_manifest(path)
