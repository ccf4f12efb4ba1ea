"""Audio as float32 mono at a fixed rate: soundfile for wav/flac/ogg, PyAV for the audio track of anything else."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from emotune.media.errors import TRUNCATED, TRUNCATED_FRACTION, MediaError, check_readable, first_line
from emotune.media.kinds import SOUNDFILE_EXT

SAMPLE_RATE = 16_000


def load_audio(path: Path | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole file as a 1-D float32 array in [-1, 1] at `sample_rate` (channels averaged)."""
    path = Path(path)
    check_readable(path)
    if path.suffix.lower() in SOUNDFILE_EXT:
        audio, sr = _read_soundfile(path)
    else:
        audio, sr = _read_av(path, sample_rate)
    if audio.size == 0:
        raise MediaError(path, "no audio samples")
    if not np.all(np.isfinite(audio)):
        raise MediaError(path, "audio contains NaN or infinite samples")
    return resample(audio, sr, sample_rate)


def resample(audio: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(sr, target)
    return resample_poly(audio, target // g, sr // g).astype(np.float32)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile reports every broken header as a generic error
        raise MediaError(path, f"unreadable audio ({first_line(exc, path)})") from None
    if _wav_cut_short(path):
        raise MediaError(path, TRUNCATED)
    return audio.mean(axis=1), int(sr)


def _wav_cut_short(path: Path) -> bool:
    """A WAV whose data chunk declares more bytes than the file holds: a partial copy. libsndfile reads
    what is there without a word, so compare the header with the file size."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        while len(chunk := f.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                # Writers that stream to a pipe put a placeholder (0 or ~4 GB) here: no length is declared.
                declared = 0 < size < 0x7F000000
                return declared and path.stat().st_size - f.tell() < TRUNCATED_FRACTION * size
            f.seek(size + (size & 1), 1)
    return False


def _read_av(path: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    """Decode the first audio track and resample it inside FFmpeg (cheaper than doing it in numpy)."""
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise MediaError(path, f"unreadable media ({first_line(exc, path)})") from None
    chunks = []
    try:
        if not container.streams.audio:
            raise MediaError(path, "no audio track")
        stream = container.streams.audio[0]
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            # A truncated file decodes up to the damage; keep what came out if anything did.
            if not chunks:
                raise MediaError(path, f"undecodable audio track ({first_line(exc, path)})") from None
    finally:
        container.close()
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if declared and audio.size < TRUNCATED_FRACTION * declared * sample_rate:
        raise MediaError(path, TRUNCATED)
    return audio.astype(np.float32, copy=False), sample_rate
