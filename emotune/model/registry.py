"""model.kind → the class that implements it (imported lazily: the LM pulls in transformers)."""

from __future__ import annotations

import importlib

# One entry per name in emotune.vocab.MODEL_KINDS (checked by tests/model/test_registry.py).
KINDS = {
    "baseline_lr": "emotune.model.baseline_lr:LogisticBaseline",
    "baseline_mlp": "emotune.model.baseline_mlp:MLPBaseline",
    "emotion_lm": "emotune.model.emotion_lm:EmotionLM",
    "late_fusion": "emotune.model.late_fusion:LateFusion",
}


def model_class(kind: str):
    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)
