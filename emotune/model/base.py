"""What every model kind provides, so training, evaluation, CV and the demo treat them alike."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol

import numpy as np

from emotune.data.examples import Examples


def state_hash(tensors: dict) -> str:
    """sha256 over named weights (names, shapes, values): equal hashes across folds prove every fold
    started from the same weights. The one hash every model kind uses."""
    import hashlib

    h = hashlib.sha256()
    for name, value in sorted(tensors.items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def trainable(module) -> dict:
    """A torch module's trainable parameters by name."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


class EmotionModel(Protocol):
    """What training, evaluation, CV, prediction and the demo may call on any model kind."""

    label_names: list[str]
    init_hash: Optional[str]  # state_hash of the trainable weights right after initialisation (set by fit)

    def fit(self, train: Examples, val: Examples, out_dir: Path, run_hash: str = "") -> dict:
        """Train; may write checkpoints under out_dir (resumable: only by a run with the same `run_hash`,
        the run's config + data identity). Returns a history dict."""

    def predict_proba(self, ex: Examples) -> np.ndarray:
        """[N, C] class probabilities (rows sum to 1 for single-label; independent for multi-label)."""

    def save(self, out_dir: Path) -> None:
        """Write the trained weights (safetensors / JSON only, never pickle)."""

    @classmethod
    def load(cls, out_dir: Path) -> "EmotionModel":
        """A saved model, ready to predict."""

    def state_hash(self) -> Optional[str]:
        """state_hash of the trainable weights now; None while the model has none (before fit)."""

    def configure_eval(self, cfg) -> None:
        """Apply evaluation-time settings of a recipe (eval.*, another prompt pool) to a trained model."""

    def generate(self, ex: Examples) -> list[str]:
        """Free-text answers (the emotion LM); a classifier head raises EmotuneError saying it cannot."""
