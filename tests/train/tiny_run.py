"""A tiny emotion-LM training run in its own process, for the kill-and-resume test.

    python -m tests.train.tiny_run LM_DIR OUT_DIR [--exact BATCH]

With --exact the run has no randomness that depends on how a batch is split (no dropout, no modality
dropout, one prompt template, plain shuffling) and BATCH samples per process: N processes with BATCH/N
then see the same global batches as one process with BATCH.

Trains (resuming from OUT_DIR/model/checkpoints when present) and writes OUT_DIR/result.json with the
history and the validation probabilities.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from emotune.model.emotion_lm import EmotionLM
from emotune.model.lm_config import LMConfig, LoRAConfig
from emotune.train.config import TrainConfig
from tests.model.tiny import random_examples

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
SHAPES = {"egemaps": (88,), "whisper_seq": (4, 16)}


def main(lm_dir: str, out_dir: str, exact_batch: int = 0) -> None:
    torch.set_num_threads(1)
    train = random_examples(96, LABELS, SHAPES, seed=0, missing=0.1)
    val = random_examples(24, LABELS, SHAPES, seed=1)
    if exact_batch:
        cfg = LMConfig(backbone=lm_dir, dtype="fp32", tokens=2, modality_dropout=0.0, prompts=["default"],
                       lora=LoRAConfig(r=4, dropout=0.0))
        tc = TrainConfig(epochs=2, batch_size=exact_batch, grad_accum=2, lr=3e-3, patience=0, bf16=False,
                         checkpoint_every=1, progress=False)
    else:
        cfg = LMConfig(backbone=lm_dir, dtype="fp32", tokens=2, modality_dropout=0.3, prompts=["default", "terse"],
                       lora=LoRAConfig(r=4, dropout=0.1))
        tc = TrainConfig(epochs=3, batch_size=8, grad_accum=2, lr=3e-3, patience=0, bf16=False, checkpoint_every=1,
                         progress=False, imbalance="balanced_sampler", group_by_length=True,
                         ema=0.9)  # the weights' average must resume exactly too
    model = EmotionLM(LABELS, list(SHAPES), SHAPES, cfg, tc, seed=3)
    history = model.fit(train, val, Path(out_dir) / "model")
    result = {"history": history, "probs": model.predict_proba(val).tolist()}
    (Path(out_dir) / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--exact" else 0)
