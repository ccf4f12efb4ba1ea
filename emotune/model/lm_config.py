"""`model.lm`: the emotion LM (backbone, projectors, LoRA, prompts)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class LMConfig:
    backbone: str = "smollm2-135m-instruct"  # built-in offline default, or any HF causal LM id / local path
