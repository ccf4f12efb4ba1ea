"""Small process helpers shared by the caches that publish folders atomically."""

from __future__ import annotations

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
