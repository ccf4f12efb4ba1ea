"""The emotion LM: cached features → projected tokens inside a chat prompt → a frozen causal LM (+ LoRA).

This file is the model facade (fit / predict / generate / save / load). The graph is in lm_net.py:
everything that feeds the LM goes through `EmotionLMNet.embed`, which calls `splice` — the single
function that puts projected feature tokens in place of the placeholder tokens; the ids come from
lm_batching.py (`Batcher.row`). Training, closed-set scoring and generation all build their inputs
with these two, so the model is evaluated on exactly the inputs it was trained on.

Answers. The prompt ends with the template's answer prefix ("Emotion:"); the answer is " <label>".
- Closed-set scoring: the log-likelihood of every label's tokens after the prompt (summed over its
  tokens, see `label_scores` for why not length-normalised) → softmax over the labels (single / soft targets) or sigmoid(score + learned per-class bias) (multi).
  When every label is one token (SmolLM2: every RAVDESS and MELD label) the score is the hidden state
  at the last prompt position times the label tokens' output rows — a C-way head instead of the
  49k-word vocabulary. Multi-token labels are scored exactly by a short continuation over the cache.
- Training loss: the imbalance-aware loss of `emotune.train.losses` over those closed-set scores,
  plus `lm_loss_weight` × next-token cross-entropy on the answer text (the label, the label list of a
  multi-label target, or a reasoning text that ends in the label), only on answer tokens. With
  `model.lm.mixup` the features of pairs of batch samples are mixed and the closed-set target with
  them (lm_batching.Batcher.mix); the answer text stays the dominant sample's label.
- Generation: greedy decoding from the same embeddings; the text is parsed by `emotune.evaluate.decode`.

Speed (a CPU has little to spare): the prompt prefix shared by a batch (system prompt, the start of
the user turn) is run once and its key/value cache expanded over the batch; with LoRA off it is run
once for the whole training. bf16 autocast and bf16 frozen weights where the hardware has fast bf16 matmuls (`model.lm.dtype`,
`train.bf16`: auto, see precision.py), fp32 elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from emotune.model.base import state_hash
from emotune.model.lm_config import LMConfig, LoRAConfig
from emotune.model.lm_batching import Batcher
from emotune.model.lm_net import Batch, EmotionLMNet, label_spellings
from emotune.model.projector import Projector
from emotune.model.prompt import Template, load_templates
from emotune.train.config import TrainConfig
from emotune.vocab import TARGETS

WEIGHTS_FILE = "emotion_lm.safetensors"
META_FILE = "emotion_lm.json"


class EmotionLM:
    """`model.kind: emotion_lm` — see the module docstring. Implements the EmotionModel protocol."""

    def __init__(self, label_names: list[str], inputs: list[str], feature_shapes: dict[str, tuple],
                 cfg: LMConfig, train_cfg: TrainConfig, target: str = "single", seed: int = 0):
        from emotune.model.backbone import load_backbone

        if target not in TARGETS:
            raise EmotuneError(f"emotion_lm target must be one of {', '.join(TARGETS)}, got {target!r}")
        missing = [n for n in inputs if n not in feature_shapes]
        if missing:
            raise EmotuneError(f"model.inputs {missing} have no cached features (known: {sorted(feature_shapes)})")
        for n in inputs:
            if len(feature_shapes[n]) not in (1, 2):
                raise EmotuneError(f"feature '{n}' has shape {feature_shapes[n]}: expected a vector (d,) or a sequence (rows, d)")
        if cfg.mixup > 0 and target == "reasoning":
            raise EmotuneError("model.lm.mixup needs a label target (single, soft or multi), not reasoning")
        if cfg.distill != "none" and target != "single":
            raise EmotuneError(f"model.lm.distill teaches a single-label target from a head's probabilities; "
                               f"data.target is {target!r}")
        from emotune.train.losses import check_smoothing

        check_smoothing(train_cfg.label_smoothing, "emotion_lm", train_cfg.imbalance, target)
        self.label_names = list(label_names)
        self.inputs = list(inputs)
        self.feature_shapes = {n: tuple(int(x) for x in feature_shapes[n]) for n in inputs}
        self.cfg, self.train_cfg, self.target, self.seed = cfg, train_cfg, target, seed
        self.templates = load_templates(cfg.prompts)
        self.eval_templates = load_templates(cfg.eval_prompts or cfg.prompts)
        from emotune.model.precision import resolve

        # What `auto` chose on this machine (recorded with the saved model).
        self.precision = {"weights": resolve(cfg.dtype), "autocast": resolve(train_cfg.bf16)}
        lm, self.tokenizer = load_backbone(cfg.backbone, self.precision["weights"])
        for p in lm.parameters():
            p.requires_grad_(False)
        attention = cfg.attention if cfg.attention != "auto" else ("sdpa" if torch.cuda.is_available() else "eager")
        lm.set_attn_implementation(attention)
        torch.manual_seed(seed)  # same initial projector / LoRA weights for every fold
        if cfg.lora.enabled:
            lm = self._add_lora(lm, cfg.lora)
        from emotune.model import probe_init

        probe_init.check(cfg, self.inputs, self.feature_shapes, len(self.label_names))
        hidden_size = lm.config.get_text_config().hidden_size
        embed_rms = float(lm.get_input_embeddings().weight.float().pow(2).mean().sqrt())
        projectors = {
            n: Projector(self.feature_shapes[n][-1], hidden_size, cfg.tokens, cfg.projector, cfg.projector_hidden,
                         embed_rms, sequence=len(self.feature_shapes[n]) == 2, noise=cfg.feature_noise,
                         rank=cfg.projector_rank, act="relu" if cfg.probe_init == "mlp" else "gelu",
                         dropout=cfg.projector_dropout)
            for n in self.inputs
        }
        self.batcher = Batcher(self.tokenizer, self.label_names, self.inputs, self.feature_shapes, cfg.tokens, target,
                               cfg.max_text_chars, train_cfg.eval_batch_size, cfg.reasoning_position, cfg.input_layout,
                               cfg.max_text_tokens)
        lm_weight = max(cfg.lm_loss_weight, 1.0) if target == "reasoning" else cfg.lm_loss_weight
        autocast = "bf16" in self.precision.values()
        seqs, owner = label_spellings(self.tokenizer, self.label_names)
        self.net = EmotionLMNet(lm, projectors, seqs, owner, target == "multi", cfg.lora.enabled, lm_weight, autocast)
        self.net.eval()
        self.init_hash: Optional[str] = None  # run_fold records state_hash() before fit instead

    @staticmethod
    def _add_lora(lm, lora: LoRAConfig):
        from peft import LoraConfig, get_peft_model

        try:
            return get_peft_model(lm, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
        except ValueError as exc:
            raise EmotuneError(f"model.lm.lora.target_modules {lora.target_modules}: {str(exc).splitlines()[0]}") from None

    # -- targets
    def trainable(self, ex: Examples) -> np.ndarray:
        """Indices of the samples that carry a target of this model's kind."""
        return np.flatnonzero(ex.has_target(self.target))

    def _reasoning(self, ex: Examples) -> list[str]:
        texts = getattr(ex, "reasoning", None)
        if texts is None or len(texts) != len(ex) or not all(isinstance(t, str) and t.strip() for t in texts):
            raise EmotuneError("target 'reasoning' needs a reasoning text for every training sample "
                               "(Examples.reasoning, from instruction data)")
        return list(texts)

    def make_batch(self, ex: Examples, index, generator: torch.Generator, reasoning: Optional[list[str]] = None,
                   soft_targets: Optional[np.ndarray] = None) -> Batch:
        """A training batch: a template drawn per sample, inputs dropped at `modality_dropout`; closed-set
        targets from `soft_targets` (distillation) where given, else the samples' own."""
        return self.batcher.make_batch(ex, index, generator, self.templates, self.cfg.modality_dropout, reasoning,
                                       self.cfg.mixup, soft_targets)

    # -- the EmotionModel protocol
    def fit(self, train: Examples, val: Examples, out_dir: Path, run_hash: str = "", keep_val_probs: bool = False) -> dict:
        """Train on `train`, validating on `val` after each epoch. keep_val_probs: each epoch's record also holds
        the validation samples' class probabilities (`val_probs`, in the order of `val`'s labelled samples), so
        an inner CV can write per-sample predictions at the epoch it chooses afterwards (they survive a resume)."""
        from emotune.train.losses import class_weights, make_loss
        from emotune.train.trainer import fit

        keep = self.trainable(train)
        if len(keep) == 0:
            raise EmotuneError("no training sample has a target of this kind")
        reasoning = [self._reasoning(train)[i] for i in keep] if self.target == "reasoning" else None
        train = train.subset(keep)
        for name, proj in self.net.projectors.items():
            arrays = [a for a in train.features[name] if a is not None]
            if not arrays:
                raise EmotuneError(f"feature '{name}' is missing for every training sample")
            proj.set_stats(arrays)
        tc = self.train_cfg
        probe = self._probe_init(train, val) if self.cfg.probe_init != "none" else None
        distilled, teacher = None, None
        if self.cfg.distill != "none":
            from emotune.model.distill import teacher_targets

            distilled, teacher = teacher_targets(self.cfg.distill, self.cfg.distill_weight, self.cfg.distill_folds,
                                                 self.label_names, self.inputs, tc.imbalance, self.seed, train, val)
        kind = "focal" if tc.imbalance == "focal" else "ce"
        weights = class_weights(train.targets(self.target), len(self.label_names)) if tc.imbalance == "class_weights" else None
        # Mixup turns single-label targets into two-label mixes: the soft loss (exactly the single one on one-hot rows).
        soft = (self.cfg.mixup > 0 or distilled is not None) and self.target == "single"
        loss_target = "single" if self.target == "reasoning" else "soft" if soft else self.target
        self.net.loss_fn = make_loss(kind, weights, tc.focal_gamma, loss_target, tc.label_smoothing)
        task = LMTask(self, train, val, reasoning, distilled, keep_probs=keep_val_probs)
        history = fit(self.net, task, tc, Path(out_dir), self.seed, run_hash)
        extra = {k: v for k, v in (("probe_init", probe), ("distill", teacher)) if v}
        return {**history, **extra}

    def _probe_init(self, train: Examples, val: Examples) -> dict:
        """Fit the head of `model.lm.probe_init` and start the projectors from it; its selection figures."""
        import os
        import sys

        from emotune.model import probe_init

        kind = self.cfg.probe_init
        head, history = probe_init.fit_head(kind, self.label_names, self.inputs, self.target, self.train_cfg.imbalance,
                                            self.seed, self.cfg.projector_hidden, train, val)
        probe_init.load(self.net.projectors, self.inputs, kind, head)
        if self.cfg.probe_freeze:
            probe_init.freeze_first_layers(self.net.projectors)
        keep = {k: v for k, v in history.items() if k != "curve" and not isinstance(v, (list, dict))}
        if not os.environ.get("EMOTUNE_QUIET"):
            print(f"projectors start from the {kind} head ({keep})", file=sys.stderr, flush=True)
        return {"kind": kind, **keep}

    def predict_proba(self, ex: Examples) -> np.ndarray:
        """[N, C] closed-set probabilities, averaged over the evaluation templates."""
        out = np.zeros((len(ex), len(self.label_names)), dtype=np.float64)
        if len(ex) == 0:
            return out.astype(np.float32)
        self.net.eval()
        with torch.no_grad():
            for t in self.eval_templates:
                leads = self._generated_reasoning(ex, t) if self.batcher.reasoning_first else [None] * len(ex)
                rows = [self.batcher.row(ex, i, t, lead=leads[i]) for i in range(len(ex))]
                for chunk in self.batcher.chunks(rows):
                    logits = self.net.class_logits(self.batcher.collate([rows[i] for i in chunk])).float()
                    p = torch.sigmoid(logits) if self.target == "multi" else torch.softmax(logits, dim=-1)
                    out[chunk] += p.cpu().numpy()
        return (out / len(self.eval_templates)).astype(np.float32)

    def generate(self, ex: Examples, max_new_tokens: Optional[int] = None) -> list[str]:
        """Greedy answers (the assistant's whole turn, answer prefix included) for the first eval template."""
        t = self.eval_templates[0]
        texts = self._generate(ex, t, max_new_tokens or self.cfg.max_new_tokens)
        return texts if self.batcher.reasoning_first else [t.answer_prefix + x for x in texts]

    def answer_and_reasoning(self, text: str) -> tuple[str, str]:
        """A generated turn split into the part holding the answer and the reasoning (\"\" without one)."""
        prefix = self.eval_templates[0].answer_prefix
        if self.target != "reasoning":
            return text, ""
        if self.batcher.reasoning_first:
            return text, text.split(prefix)[0].strip()  # the parser reads what follows the last prefix
        answer, _, reasoning = text.partition("\n")
        return answer, reasoning.strip()

    def explain(self, ex: Examples, labels: list[str]) -> list[str]:
        """The reasoning for each sample, ending in the label given ("...\nEmotion: sad"). Reasoning written
        before the label is the model's own, and the label was scored after it; reasoning written after the
        label is generated for the label given, so an explanation never argues for another label."""
        t = self.eval_templates[0]
        if self.batcher.reasoning_first:
            reasons = [self.answer_and_reasoning(x)[1] for x in self.generate(ex)]
        else:
            reasons = [x.strip() for x in self._generate(ex, t, self.cfg.max_new_tokens, given=labels)]
        return [f"{r}\n{t.answer_prefix} {label}" for r, label in zip(reasons, labels)]

    def _generate(self, ex: Examples, t: Template, max_new_tokens: int, given: Optional[list[str]] = None) -> list[str]:
        out: list[str] = [""] * len(ex)
        if len(ex) == 0:
            return out
        self.net.eval()
        base = self.net.base
        rows = [self.batcher.row(ex, i, t, generating=True, given=given[i] if given else None) for i in range(len(ex))]
        tok = self.tokenizer
        with torch.no_grad(), self.net.amp():
            for chunk in self.batcher.chunks(rows):
                batch = self.batcher.collate([rows[i] for i in chunk], share_prefix=False, left_pad=True).to(self.net.device)
                gen = base.generate(inputs_embeds=self.net.embed(batch), attention_mask=batch.attention_mask,
                                    max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
                for i, text in zip(chunk, tok.batch_decode(gen, skip_special_tokens=True)):
                    out[i] = text
        return out

    def _generated_reasoning(self, ex: Examples, t: Template) -> list[str]:
        """Reasoning generated up to the answer prefix; the labels are then scored after the prefix."""
        texts = self._generate(ex, t, self.cfg.max_new_tokens)
        return [x.split(t.answer_prefix)[0] for x in texts]

    def configure_eval(self, cfg) -> None:
        """Evaluation-time settings of `emotune eval` (another prompt pool, generation length)."""
        lm = cfg.model.lm
        self.eval_templates = load_templates(lm.eval_prompts or self.cfg.prompts)
        self.cfg = dataclasses.replace(self.cfg, eval_prompts=list(lm.eval_prompts), max_new_tokens=lm.max_new_tokens)

    def state_hash(self) -> str:
        return state_hash(self.net.trainable_state())

    def save(self, out_dir: Path) -> None:
        from emotune.io import atomic_write_json
        from emotune.train.checkpoint import save_tensors

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_tensors(self.net.trainable_state(), out_dir / WEIGHTS_FILE)
        atomic_write_json(out_dir / META_FILE, {
            "kind": "emotion_lm", "label_names": self.label_names, "inputs": self.inputs,
            "feature_shapes": {k: list(v) for k, v in self.feature_shapes.items()}, "target": self.target,
            "seed": self.seed, "lm": dataclasses.asdict(self.cfg), "train": dataclasses.asdict(self.train_cfg),
            "precision": self.precision,
        })

    @classmethod
    def load(cls, out_dir: Path) -> "EmotionLM":
        from emotune.train.checkpoint import load_tensors

        out_dir = Path(out_dir)
        try:
            meta = json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EmotuneError(f"{out_dir}: no {META_FILE} (not a trained emotion LM)") from None
        except json.JSONDecodeError as exc:
            raise EmotuneError(f"{out_dir / META_FILE}: malformed JSON ({exc.msg})") from None
        lm = dict(meta["lm"])
        lm["lora"] = LoRAConfig(**lm["lora"])
        model = cls(meta["label_names"], meta["inputs"], {k: tuple(v) for k, v in meta["feature_shapes"].items()},
                    LMConfig(**lm), TrainConfig(**meta["train"]), meta["target"], meta["seed"])
        model.net.load_trainable_state(load_tensors(out_dir / WEIGHTS_FILE))
        return model


class LMTask:
    """What the generic trainer needs from the emotion LM: batches, targets, a validation pass."""

    def __init__(self, model: EmotionLM, train: Examples, val: Examples, reasoning: Optional[list[str]] = None,
                 soft_targets: Optional[np.ndarray] = None, keep_probs: bool = False):
        self.model, self.train, self.val, self.reasoning = model, train, val, reasoning
        self.keep_probs = keep_probs
        self.soft_targets = soft_targets  # [N, C] distilled targets (model.lm.distill), else None
        self.n_train = len(train)
        self.targets = train.targets(model.target)
        # For length grouping: prompt tokens of each sample under the first template.
        self.lengths = None
        if model.train_cfg.group_by_length:
            t = model.templates[0]
            self.lengths = np.array([len(model.batcher.row(train, i, t).ids) for i in range(len(train))])
        self.monitor = "map" if model.target == "multi" else "ua"

    def make_batch(self, index, generator: torch.Generator) -> Batch:
        return self.model.make_batch(self.train, index, generator, self.reasoning, self.soft_targets)

    def validate(self) -> dict:
        from emotune.evaluate.metrics import classification_metrics, multilabel_metrics

        val = self.val.subset(self.model.trainable(self.val)) if self.val is not None and len(self.val) else None
        if val is None or len(val) == 0:
            return {}
        probs = self.model.predict_proba(val)
        if self.model.target == "multi":
            m = multilabel_metrics(val.y_multi, probs > 0.5, val.label_names, scores=probs)
            return {k: m[k] for k in ("map", "macro_f1", "micro_f1")}
        m = classification_metrics(val.hard_labels(), probs.argmax(1), val.label_names)
        out = {k: m[k] for k in ("ua", "wa", "macro_f1", "weighted_f1")}
        if self.keep_probs:
            out["probs"] = np.round(probs, 6).tolist()
        return out
