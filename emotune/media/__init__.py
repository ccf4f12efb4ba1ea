"""Decoding media files: audio (soundfile, PyAV for audio tracks), video frames (PyAV), face crops (OpenCV).

Every reader raises `MediaError` with a short reason ("file not found", "empty file (0 bytes)", ...)
so a batch job can record it per sample and go on, and a single-file command can print it.
"""

from emotune.media.errors import MediaError

__all__ = ["MediaError"]
