"""The one error media readers raise: a file that cannot give what was asked of it."""

from __future__ import annotations

import re
from pathlib import Path

from emotune.errors import EmotuneError


class MediaError(EmotuneError):
    """`reason` is short and stable (it is counted in summaries); the message also names the file."""

    def __init__(self, path: Path | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def check_readable(path: Path) -> None:
    """Fail early, with a reason a person understands, on the commonest broken inputs."""
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")


def first_line(exc: Exception, path: Path | str) -> str:
    """A decoder's message without the file name (the reason is counted across files) and short."""
    text = str(exc).replace(str(path), "").replace("''", "").replace(": :", ":").strip(" :'")
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)  # FFmpeg's numeric codes say nothing to a person
    lines = text.splitlines()
    return lines[0][:120] if lines and lines[0] else type(exc).__name__


# A decoded stream this much shorter than the length its header declares was cut off (a partial copy
# or download). MP4s with the index at the front decode "successfully" up to the cut, so check it.
TRUNCATED_FRACTION = 0.8
TRUNCATED = "truncated file (ends before its declared duration)"
