"""Where things live outside the project: datasets (`EMOTUNE_DATA`) and caches (`EMOTUNE_CACHE`)."""

from __future__ import annotations

import os
from pathlib import Path

from emotune.errors import EmotuneError


def data_home() -> Path | None:
    """Where dataset roots named relatively in a config are looked up (`EMOTUNE_DATA`)."""
    value = os.environ.get("EMOTUNE_DATA")
    return Path(value) if value else None


def cache_home() -> Path:
    """User cache for converted backbones and features (`EMOTUNE_CACHE`, default ~/.cache/emotune)."""
    value = os.environ.get("EMOTUNE_CACHE")
    return Path(value) if value else Path.home() / ".cache" / "emotune"


def resolve_data_root(root: str) -> Path:
    """A dataset root from a config: absolute, or relative to the working dir, or to `EMOTUNE_DATA`."""
    p = Path(os.path.expanduser(root))
    if p.is_absolute() or p.exists():
        return p
    home = data_home()
    if home is not None and (home / p).exists():
        return home / p
    hint = f" (also looked in EMOTUNE_DATA={home})" if home else " (set EMOTUNE_DATA to the folder that holds your datasets)"
    raise EmotuneError(f"dataset root not found: {root}{hint}")
