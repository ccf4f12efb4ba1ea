"""Frames from a video (PyAV) or a still image (OpenCV), as BGR uint8 arrays with their times."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotune.media.errors import TRUNCATED, TRUNCATED_FRACTION, MediaError, check_readable, first_line
from emotune.media.kinds import media_kind


def is_image(path: Path | str) -> bool:
    return media_kind(path) == "image"


def load_image(path: Path | str) -> np.ndarray:
    """A still image as BGR uint8 (H, W, 3)."""
    import cv2

    path = Path(path)
    check_readable(path)
    # imdecode on the bytes, not imread: imread fails silently on non-ASCII paths on some platforms.
    data = np.fromfile(str(path), dtype=np.uint8)
    if _cut_short(path, data.tobytes()):
        # OpenCV decodes a cut-off JPEG "successfully", grey below the cut: refuse it instead
        raise MediaError(path, "truncated image (the file ends before its end marker)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(path, "not an image OpenCV can decode")
    return image


def _cut_short(path: Path, data: bytes) -> bool:
    """A JPEG without its end-of-image marker or a PNG without its IEND chunk near the end of the file."""
    if data[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" not in data[-64:]  # encoders may pad a few bytes after the marker
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    return False


def sample_frames(path: Path | str, count: int = 16) -> list[tuple[float, np.ndarray]]:
    """Up to `count` frames spread evenly over the video, as (seconds, BGR array); a still image is one frame.

    Decoding runs through the file once; only the chosen frames are converted to arrays, which is the
    costly part for HD video. A truncated file yields the frames before the damage, or an error if none.
    """
    path = Path(path)
    if is_image(path):
        return [(0.0, load_image(path))]
    import av

    check_readable(path)
    try:
        container = av.open(str(path))
    except Exception as exc:
        raise MediaError(path, f"unreadable media ({first_line(exc, path)})") from None
    frames: list[tuple[float, np.ndarray]] = []
    try:
        if not container.streams.video:
            raise MediaError(path, "no video track")
        stream = container.streams.video[0]
        duration = _duration(container, stream)
        # Target times at the centres of `count` equal slices; take the first frame at or after each.
        targets = [(i + 0.5) * duration / count for i in range(count)] if duration > 0 else [0.0]
        k, last = 0, 0.0
        try:
            for frame in container.decode(video=0):
                t = last = float(frame.time) if frame.time is not None else last
                if k < len(targets) and t + 1e-6 >= targets[k]:
                    frames.append((t, frame.to_ndarray(format="bgr24")))
                    while k < len(targets) and targets[k] <= t + 1e-6:
                        k += 1
                if k >= len(targets):
                    break
        except av.error.FFmpegError as exc:
            if not frames:
                raise MediaError(path, f"undecodable video ({first_line(exc, path)})") from None
    finally:
        container.close()
    if not frames:
        raise MediaError(path, "no decodable video frames")
    if duration > 0 and k < len(targets) and last < TRUNCATED_FRACTION * duration:
        raise MediaError(path, TRUNCATED)
    return frames


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # microseconds (av.time_base)
    return 0.0
