"""What every model kind provides, so training, evaluation, CV and the demo treat them alike."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from emotune.data.examples import Examples


def state_hash(module) -> str:
    """sha256 over a torch module's trainable parameters (names, shapes, values), for fold-independence checks."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
        if p.requires_grad:
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class EmotionModel(Protocol):
    label_names: list[str]
    init_hash: str  # state_hash of the trainable weights right after initialisation (set by fit)

    def fit(self, train: Examples, val: Examples, out_dir: Path, run_hash: str = "") -> dict:
        """Train; may write checkpoints under out_dir (resumable: only by a run with the same `run_hash`,
        the run's config + data identity). Returns a history dict."""

    def predict_proba(self, ex: Examples) -> np.ndarray:
        """[N, C] class probabilities (rows sum to 1 for single-label; independent for multi-label)."""

    def save(self, out_dir: Path) -> None:
        """Write the trained weights (safetensors / JSON only, never pickle)."""
