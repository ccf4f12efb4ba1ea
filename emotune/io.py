"""Small file helpers every stage shares: writes that a kill or a full disk can never leave half done."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def atomic_replace(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temp file beside `path`, then rename it over `path` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(3)}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_replace(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, default=float))


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, object) for each non-blank line; a line that is not UTF-8 or not JSON stops with
    one message naming the file and the line."""
    from emotune.errors import EmotuneError

    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EmotuneError(f"{path}:{lineno}: not UTF-8 text ({exc.reason} at byte {exc.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise EmotuneError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
