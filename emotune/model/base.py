"""What every model kind provides, so training, evaluation, CV and the demo treat them alike."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from emotune.data.examples import Examples


class EmotionModel(Protocol):
    label_names: list[str]

    def fit(self, train: Examples, val: Examples, out_dir: Path) -> dict:
        """Train; may write checkpoints under out_dir (resumable). Returns a history dict."""

    def predict_proba(self, ex: Examples) -> np.ndarray:
        """[N, C] class probabilities (rows sum to 1 for single-label; independent for multi-label)."""

    def save(self, out_dir: Path) -> None:
        """Write the trained weights (safetensors / JSON only, never pickle)."""
