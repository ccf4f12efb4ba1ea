"""Small process helpers: liveness for the caches that publish folders atomically, and rank."""

from __future__ import annotations

import contextlib
import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this id still runs (a temp folder it owns is then not stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_main_process() -> bool:
    """False in the non-zero ranks of `accelerate launch` / `torchrun` (they set RANK): those train their
    share and leave writing the run's files to rank 0."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def scoped_env(values: dict[str, str]):
    """Set environment variables for a block (child processes started inside inherit them), then put
    back what was there before, unset ones unset."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
