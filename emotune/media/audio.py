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



MIN_TRIMMED_SECONDS = 0.25  # what trimming always leaves, centred on what it kept


def trim_silence(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, top_db: float = 40.0) -> np.ndarray:
    """`audio` without its leading and trailing stretches quieter than `top_db` below its loudest 25-ms frame.

    Corpora padded to a fixed length (RAVDESS: ~1 s of near-digital silence at each end; 3.6 s clips become
    1.9 s on average) otherwise spend half of every clip, and of every pooled feature, on nothing. A clip
    with no energy at all has nothing to measure against and is returned as it is."""
    frame, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
    if audio.size <= frame:
        return audio
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    if rms.max() <= 0:
        return audio
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-top_db / 20))
    return _keep(audio, loud[0] * hop, loud[-1] * hop + frame, sample_rate)


def trim_to_speech(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`audio` from the first to the last stretch that Silero VAD hears as speech (pauses inside are kept).

    The VAD is the ONNX model faster-whisper ships (no download, no torch); unlike an energy rule it also
    cuts breaths, clicks and background noise at the ends. A clip with no speech found is returned as it is.
    Settings: pauses under 300 ms do not end speech; 100 ms of audio is kept beyond each end."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300, speech_pad_ms=100), sampling_rate=sample_rate)
    return _keep(audio, spans[0]["start"], spans[-1]["end"], sample_rate) if spans else audio


def _keep(audio: np.ndarray, start: int, end: int, sample_rate: int) -> np.ndarray:
    """audio[start:end], widened (centred) to MIN_TRIMMED_SECONDS so a click in silence is not cut to a few samples."""
    end = min(audio.size, end)
    keep = min(audio.size, max(end - start, int(MIN_TRIMMED_SECONDS * sample_rate)))
    start = min(max(0, (start + end - keep) // 2), audio.size - keep)
    return audio[start: start + keep]
