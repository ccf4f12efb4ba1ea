"""`model.lm`: the emotion LM (backbone, projectors, LoRA, prompts)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from emotune.errors import check_ranges


@dataclasses.dataclass
class LoRAConfig:
    enabled: bool = True  # false = projector-only training (the LM is untouched)
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = dataclasses.field(default_factory=lambda: ["q_proj", "v_proj"])

    def __post_init__(self) -> None:
        check_ranges(self, {"r": ">=1", "alpha": ">0", "dropout": "0..1"})


@dataclasses.dataclass
class LMConfig:
    backbone: str = "smollm2-135m-instruct"  # built-in offline default, or any HF causal LM id / local path
    # dtype of the frozen LM weights (trainable weights stay fp32); auto = bf16 where bf16 matmuls are fast
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    projector: Literal["linear", "lowrank", "mlp"] = "mlp"
    projector_hidden: int = 1024  # hidden width of the 2-layer MLP projector
    projector_rank: int = 8  # inner width of the low-rank projector (a linear map through this many dimensions)
    # Training only: dropout on the projector's hidden layer (mlp) or inner layer (lowrank), as the MLP head
    # has on its hidden layer (baseline.dropout); a linear projector has no hidden layer and refuses it.
    projector_dropout: float = 0.0
    # Linear-probe-then-finetune (Kumar et al. 2022): before training, fit a head on the same training side
    # (validation as the head itself uses it) and start each projector's first layer from it. lr: the
    # logistic regression's class weights (a linear projector starts as a random map of its logits, a lowrank
    # one with rank = the number of classes takes them as its first layer). mlp: the MLP head's hidden layer
    # (projector: mlp of width projector_hidden, ReLU as in the head; one input). Then everything trains.
    probe_init: Literal["none", "lr", "mlp"] = "none"
    # With probe_init=mlp: keep the projector's first layer where the head left it (frozen), so the LM reads
    # the head's learned hidden features and trains only what maps them to its tokens: the probe's features
    # are not distorted by training (the linear-probe end of Kumar et al. 2022's comparison).
    probe_freeze: bool = False
    # Knowledge distillation from a head (distill.py): the closed-set target becomes
    # (1 - distill_weight) · one-hot(gold) + distill_weight · the head's probabilities, cross-fitted over
    # `distill_folds` parts of the training side (by speaker where samples have groups), so each sample's
    # teacher never saw it. lr: logistic regression (C by its own inner CV); mlp: the MLP head (early stopping
    # on the validation side). none = the gold labels alone. Single-label targets; prediction uses the LM alone.
    distill: Literal["none", "lr", "mlp"] = "none"
    distill_weight: float = 0.5
    distill_folds: int = 5
    tokens: int = 4  # LM tokens per vector feature (a sequence feature gives one token per row)
    # How the prompt lays out the inputs. lines: one line per input, its name then its tokens. grouped:
    # the names of the present inputs first, then all their tokens together at the end of the line, so
    # fewer tokens follow the first feature token. Everything before that token is computed once (see
    # EmotionLMNet._prefix_kv), everything after it once per sample: with two one-token inputs this is
    # 12 tokens per sample instead of 28, and training and scoring cost about that ratio less. assistant:
    # the user turn names the inputs and their tokens open the assistant's turn, before the answer prefix;
    # with a fixed instruction (no transcript) only they and the answer prefix are computed per sample.
    input_layout: Literal["lines", "grouped", "assistant"] = "lines"
    # Training only: Gaussian noise of this std added to each standardised input feature (a regulariser
    # for small corpora; evaluation always sees the clean features).
    feature_noise: float = 0.0
    # Training only: mixup on the inputs (Zhang et al. 2018). Each sample's features are mixed with those of
    # another sample of its batch, x = l·x_i + (1 - l)·x_j with l ~ Beta(mixup, mixup) folded to l >= 0.5,
    # and its closed-set target becomes the same mix of the two labels; the prompt and the answer text stay
    # the sample's own (its label weighs l >= 0.5). Sequences mix row by row where two samples' shapes agree
    # (image grids); pairs of different lengths stay unmixed. 0 = off; 0.2-0.4 is the usual range.
    mixup: float = 0.0
    lora: LoRAConfig = dataclasses.field(default_factory=LoRAConfig)
    modality_dropout: float = 0.0  # training: drop each present input with this probability (it reads as missing)
    # Prompt templates (ids from emotune/model/prompts/*.yaml, a file stem = all its templates, or a
    # path to your own YAML). Training draws one per sample; evaluation averages the class
    # probabilities over `eval_prompts` (empty = the training templates).
    prompts: list[str] = dataclasses.field(default_factory=lambda: ["default"])
    eval_prompts: list[str] = dataclasses.field(default_factory=list)
    max_text_chars: int = 600  # transcripts and each context turn are cut to this many characters
    # ... and then to about this many tokens (0 = no limit; the cut text re-encodes within a token or two of it).
    # Characters do not bound tokens: a GoEmotions comment of Braille-pattern art is 1,435 tokens in 600
    # characters, and a batch padded to it needs more than 24 GB to train on a CPU.
    max_text_tokens: int = 0
    # Weight of the ordinary next-token loss on the whole answer text (label, list or reasoning) beside
    # the closed-set loss over the label tokens; > 0 keeps free generation answering with labels.
    lm_loss_weight: float = 0.1
    max_new_tokens: int = 16  # generation (raise it for reasoning targets)
    # Reasoning target: where the label goes. before_label (Emotion-LLaMA's order): the model writes its
    # reasoning, then "Emotion: <label>", and the label is scored after that reasoning. after_label: the
    # label is scored straight after the prompt, as in a label-only model, and the reasoning follows it
    # (an explanation is then written for the label given).
    reasoning_position: Literal["before_label", "after_label"] = "before_label"
    # Attention kernel. "auto": plain matmul attention on CPU (for ~50-150-token prompts its backward
    # is ~4x cheaper there than the fused SDPA kernel), SDPA on GPUs.
    attention: Literal["auto", "eager", "sdpa"] = "auto"

    def __post_init__(self) -> None:
        check_ranges(self, {"projector_hidden": ">=1", "projector_rank": ">=1", "tokens": ">=1", "feature_noise": ">=0", "mixup": ">=0", "modality_dropout": "[0..1]", "max_text_chars": ">=1", "max_text_tokens": ">=0", "lm_loss_weight": ">=0", "max_new_tokens": ">=1", "distill_weight": "[0..1]", "projector_dropout": "0..1"})
        if self.reasoning_position not in ("before_label", "after_label"):
            from emotune.errors import EmotuneError

            raise EmotuneError(f"model.lm.reasoning_position must be before_label or after_label, got {self.reasoning_position!r}")
        if self.probe_init not in ("none", "lr", "mlp"):
            from emotune.errors import EmotuneError

            raise EmotuneError(f"model.lm.probe_init must be none, lr or mlp, got {self.probe_init!r}")
        if self.probe_freeze and self.probe_init != "mlp":
            from emotune.errors import EmotuneError

            raise EmotuneError("model.lm.probe_freeze keeps the MLP head's hidden layer as the projector's first layer; "
                               f"it needs model.lm.probe_init=mlp (got {self.probe_init!r})")
        if self.projector_dropout > 0 and self.projector == "linear":
            from emotune.errors import EmotuneError

            raise EmotuneError("model.lm.projector_dropout acts on the projector's hidden layer; a linear projector "
                               "has none (use projector=mlp or lowrank)")
        if self.distill not in ("none", "lr", "mlp"):
            from emotune.errors import EmotuneError

            raise EmotuneError(f"model.lm.distill must be none, lr or mlp, got {self.distill!r}")
        if self.distill_folds < 2:
            from emotune.errors import EmotuneError

            raise EmotuneError(f"model.lm.distill_folds must be >= 2 (each part's teacher is fitted on the others), "
                               f"got {self.distill_folds}")
        if self.input_layout not in ("lines", "grouped", "assistant"):
            from emotune.errors import EmotuneError

            raise EmotuneError(f"model.lm.input_layout must be lines, grouped or assistant, got {self.input_layout!r}")
