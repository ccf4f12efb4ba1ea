"""The one table of media kinds and file extensions every input path accepts (API, demo, predict).

A video's audio track is audio too: where an input wants audio, a video file is accepted as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

MEDIA_EXT: dict[str, frozenset[str]] = {
    "audio": frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac"}),
    "video": frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg"}),
    "image": frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}),
}
ALL_EXT = frozenset().union(*MEDIA_EXT.values())
# Containers libsndfile reads directly (the rest are decoded through ffmpeg).
SOUNDFILE_EXT = frozenset({".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff"})


def media_kind(name: str | Path) -> Optional[str]:
    """"audio", "video" or "image" for a file name by its extension (case-insensitive), else None."""
    suffix = Path(str(name)).suffix.lower()
    return next((kind for kind, exts in MEDIA_EXT.items() if suffix in exts), None)


def accepted_for(kind: str) -> frozenset[str]:
    """Extensions an input of this kind accepts (an audio input also takes a video's audio track)."""
    return MEDIA_EXT["audio"] | MEDIA_EXT["video"] if kind == "audio" else MEDIA_EXT[kind]
