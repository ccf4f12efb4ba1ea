"""Shared fixtures. Real-data tests find the datasets through EMOTUNE_DATA and skip with a reason without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")


def data_dir(name: str) -> Path:
    """The real dataset folder `name` under $EMOTUNE_DATA, or skip the test saying why."""
    home = os.environ.get("EMOTUNE_DATA")
    if not home:
        pytest.skip(f"needs real data: set EMOTUNE_DATA to the folder holding {name}/")
    path = Path(home) / name
    if not path.exists():
        pytest.skip(f"needs real data: {path} not found")
    return path


@pytest.fixture
def ravdess_root() -> Path:
    return data_dir("ravdess_speech")


@pytest.fixture
def meld_root() -> Path:
    return data_dir("meld_text")


@pytest.fixture
def goemotions_root() -> Path:
    return data_dir("goemotions")


@pytest.fixture
def mer_root() -> Path:
    return data_dir("mer2023_examples")


@pytest.fixture(scope="session")
def emotune_cache(tmp_path_factory) -> Path:
    """A per-session EMOTUNE_CACHE unless the caller set one (then converted backbones are reused)."""
    if os.environ.get("EMOTUNE_CACHE"):
        return Path(os.environ["EMOTUNE_CACHE"])
    path = tmp_path_factory.mktemp("emotune_cache")
    os.environ["EMOTUNE_CACHE"] = str(path)
    return path


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    """A test (or library code) that switches autograd off globally would break every later training test."""
    import sys

    yield
    torch = sys.modules.get("torch")
    if torch is not None and not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("autograd was left disabled globally (use `with torch.no_grad()` instead)")
