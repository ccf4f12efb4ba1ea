"""model.kind → the class that implements it (imported lazily: the LM pulls in transformers)."""

from __future__ import annotations

import importlib

KINDS = {
    "baseline_lr": "emotune.model.baseline:LogisticBaseline",
    "baseline_mlp": "emotune.model.baseline:MLPBaseline",
    "emotion_lm": "emotune.model.emotion_lm:EmotionLM",
}


def model_class(kind: str):
    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)
