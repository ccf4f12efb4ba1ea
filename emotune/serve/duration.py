"""How long an upload plays, read from its header before any decoding, and the servers' limit on it.

Feature extraction costs time in proportion to the media's length (Whisper ASR of 300 s of speech takes
minutes on 2 cores), so the API and the demo refuse media above a duration limit before any extractor
starts, and send long clips to their own worker (emotune.serve.extraction.LongLane).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Optional

from emotune.errors import EmotuneError
from emotune.media.kinds import SOUNDFILE_EXT

DEFAULT_MAX_DURATION_S = 300.0
# Clips longer than this are extracted in a separate low-priority process, so that a short clip is
# never queued behind one (a 30-s clip costs a few seconds to extract on 2 cores).
DEFAULT_LONG_CLIP_S = 30.0
FFPROBE_TIMEOUT_S = 15


class TooLong(EmotuneError):
    """Media above the server's duration limit (HTTP 413 in the API, a message in the demo)."""


def media_duration(path: str | Path) -> Optional[float]:
    """Seconds of audio/video from the container header; None when the header does not say.

    soundfile reads a WAV/FLAC/OGG header in microseconds; ffprobe reads any other container without
    decoding a frame (for streams without a duration in the header it counts packets, still no decoding).
    """
    path = Path(path)
    if path.suffix.lower() in SOUNDFILE_EXT:
        try:
            import soundfile as sf

            info = sf.info(str(path))
            if info.samplerate > 0 and info.frames > 0:
                return info.frames / info.samplerate
        except Exception:  # libsndfile refuses the header: let ffprobe try (and the extractor say why)
            pass
    return _ffprobe_duration(path)


def _ffprobe_duration(path: Path) -> Optional[float]:
    cmd = ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=duration", "-of", "json", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S)
    except FileNotFoundError:
        raise EmotuneError("ffprobe is not installed (it is part of ffmpeg): it measures uploads") from None
    except subprocess.TimeoutExpired:
        raise EmotuneError(f"{path.name}: ffprobe could not read its header within {FFPROBE_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        return None  # not a media file: the extractors report that with their own message
    data = json.loads(proc.stdout or "{}")
    values = [data.get("format", {}).get("duration")] + [s.get("duration") for s in data.get("streams", [])]
    found = [float(v) for v in values if _is_number(v)]
    if found:
        return max(found)
    return _counted_duration(path)


def _counted_duration(path: Path) -> Optional[float]:
    """Browser recordings (WebM from MediaRecorder) often carry no duration: read the last packet's time."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts_time,duration_time",
           "-of", "csv=p=0", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EmotuneError(f"{path.name}: ffprobe could not count its packets within {FFPROBE_TIMEOUT_S} s") from None
    end = None
    for line in proc.stdout.splitlines():
        parts = [p for p in line.split(",") if _is_number(p)]
        if parts:
            end = max(end or 0.0, sum(float(p) for p in parts[:2]))
    return end


def _is_number(value) -> bool:
    try:
        return value is not None and float(value) >= 0
    except (TypeError, ValueError):
        return False


def check_duration(path: Path, limit_s: Optional[float], what: str) -> Optional[float]:
    """The duration, or TooLong naming the input, its length and the limit."""
    seconds = media_duration(path)
    if limit_s is not None and seconds is not None and seconds > limit_s:
        raise TooLong(f"{what} is {seconds:.0f} s long; this server analyses at most {limit_s:g} s "
                      f"(cut it into shorter clips)")
    return seconds
