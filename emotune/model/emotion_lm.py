"""The emotion LM: cached features → projected tokens inside a chat prompt → a frozen causal LM (+ LoRA).

Everything that feeds the LM goes through `EmotionLMNet.embed`, which embeds the prompt tokens and
calls `splice` — the single function that puts projected feature tokens in place of the placeholder
tokens. Training, closed-set scoring and generation all build their inputs with it, so the model is
evaluated on exactly the inputs it was trained on.

Answers. The prompt ends with the template's answer prefix ("Emotion:"); the answer is " <label>".
- Closed-set scoring: the log-likelihood of every label's tokens after the prompt (summed over its
  tokens, see `label_scores` for why not length-normalised) → softmax over the labels (single / soft targets) or sigmoid(score + learned per-class bias) (multi).
  When every label is one token (SmolLM2: every RAVDESS and MELD label) the score is the hidden state
  at the last prompt position times the label tokens' output rows — a C-way head instead of the
  49k-word vocabulary. Multi-token labels are scored exactly by a short continuation over the cache.
- Training loss: the imbalance-aware loss of `emotune.train.losses` over those closed-set scores,
  plus `lm_loss_weight` × next-token cross-entropy on the answer text (the label, the label list of a
  multi-label target, or a reasoning text that ends in the label), only on answer tokens.
- Generation: greedy decoding from the same embeddings; the text is parsed by `emotune.evaluate.decode`.

Speed (a CPU has little to spare): the prompt prefix shared by a batch (system prompt, the start of
the user turn) is run once and its key/value cache expanded over the batch; with LoRA off it is run
once for the whole training. bf16 autocast; the frozen LM may be stored in bf16 (`model.lm.dtype`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from emotune.model.base import state_hash
from emotune.model.lm_config import LMConfig, LoRAConfig
from emotune.model.projector import Projector
from emotune.model.prompt import PromptRenderer, Template, load_templates
from emotune.train.config import TrainConfig
from emotune.vocab import TARGETS

WEIGHTS_FILE = "emotion_lm.safetensors"
META_FILE = "emotion_lm.json"


def splice(embeds: torch.Tensor, slot_mask: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Put projected feature tokens [n_slots, H] at the slot positions of `embeds` [B, T, H].

    Slots are filled in row-major order (sample by sample, left to right), which is the order in which
    `EmotionLMNet.project` lays out each sample's inputs. Out of place, so gradients reach the projectors.
    """
    n = int(slot_mask.sum())
    if tokens.shape[0] != n:
        raise RuntimeError(f"splice: {tokens.shape[0]} projected tokens for {n} slots")
    if n == 0:
        return embeds
    return embeds.masked_scatter(slot_mask.unsqueeze(-1), tokens.to(embeds.dtype))


@dataclasses.dataclass
class Batch:
    """Token ids laid out for one forward pass; features travel as arrays until projected."""

    prefix: tuple[int, ...]  # ids shared by every row (run once, then expanded over the batch)
    ids: torch.Tensor  # [B, S] the rest, right-padded (left-padded for generation)
    slot_mask: torch.Tensor  # [B, S] placeholder positions
    features: dict[str, list[np.ndarray]]  # per input: the arrays of the rows where it is present, row order
    owners: dict[str, list[int]]  # per input: which row each array belongs to
    score_at: torch.Tensor  # [B] position in `ids` of the last prompt token (labels are scored after it)
    attention_mask: Optional[torch.Tensor] = None  # [B, S], only for left-padded generation batches
    targets: Optional[torch.Tensor] = None  # [B] class index, or [B, C] multi-hot / soft
    lm_rows: Optional[torch.Tensor] = None  # next-token loss: row, position of the predicting token, target id
    lm_cols: Optional[torch.Tensor] = None
    lm_targets: Optional[torch.Tensor] = None

    def to(self, device) -> "Batch":
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k, v in moved.items():
            if isinstance(v, torch.Tensor):
                moved[k] = v.to(device)
        return Batch(**moved)


@dataclasses.dataclass
class _Row:
    ids: list[int]
    slots: list[tuple[int, str]]
    score_at: int  # index in ids of the last token before the label
    answer_start: int = 0  # index in ids of the first answer token (lm loss)
    features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


class EmotionLMNet(nn.Module):
    """The trainable graph: projectors, the (LoRA-wrapped) LM, and the closed-set head."""

    def __init__(self, lm, projectors: dict[str, Projector], label_seqs: list[list[int]], seq_class: list[int],
                 multi: bool, lora: bool, lm_loss_weight: float, autocast: bool):
        super().__init__()
        self.lm = lm
        self.projectors = nn.ModuleDict(projectors)
        # Every spelling a label is scored under (" neutral", " Neutral"): token ids and owning class.
        self.label_seqs = label_seqs
        n_classes = max(seq_class) + 1
        self.register_buffer("first_ids", torch.tensor([t[0] for t in label_seqs]), persistent=False)
        owner = torch.full((n_classes, len(label_seqs)), float("-inf"))
        owner[torch.tensor(seq_class), torch.arange(len(label_seqs))] = 0.0
        self.register_buffer("owner", owner, persistent=False)  # [C, Q]: 0 where spelling q spells class c
        self.single_token = all(len(t) == 1 for t in label_seqs)
        self.multi = multi
        self.label_bias = nn.Parameter(torch.zeros(n_classes)) if multi else None
        self.lora = lora
        self.lm_loss_weight = lm_loss_weight
        self.autocast = autocast
        self.loss_fn = None  # set by EmotionLM.fit (class weights depend on the training data)
        self._prefix_memo: dict[tuple, list] = {}

    # -- the backbone's parts, found the same way for any Hugging Face causal LM
    @property
    def base(self):
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    @property
    def device(self) -> torch.device:
        return self.first_ids.device

    def train(self, mode: bool = True):
        if self.lora:
            self._prefix_memo.clear()  # LoRA weights change in training: cached prefixes go stale
        return super().train(mode)

    def amp(self):
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    # -- inputs
    def project(self, batch: Batch) -> torch.Tensor:
        """Projected tokens of every row, in the row-major slot order `splice` fills."""
        per_row: list[list[torch.Tensor]] = [[] for _ in range(batch.ids.shape[0])]
        for name, proj in self.projectors.items():
            arrays, owners = batch.features.get(name, []), batch.owners.get(name, [])
            if not arrays:
                continue
            if proj.sequence:
                rows = [len(a) for a in arrays]
                x = torch.as_tensor(np.concatenate(arrays), dtype=torch.float32, device=self.device)
                parts = proj(x)[:, 0].split(rows)
            else:
                x = torch.as_tensor(np.stack(arrays), dtype=torch.float32, device=self.device)
                parts = proj(x).unbind(0)
            for owner, part in zip(owners, parts):
                per_row[owner].append(part)
        flat = [t for row in per_row for t in row]
        if not flat:
            return torch.zeros(0, self.base.config.hidden_size, device=self.device)
        return torch.cat(flat)

    def embed(self, batch: Batch) -> torch.Tensor:
        """Token embeddings with the projected features spliced in: the LM's input everywhere."""
        embeds = self.base.get_input_embeddings()(batch.ids)
        return splice(embeds, batch.slot_mask, self.project(batch))

    def _prefix_kv(self, prefix: tuple[int, ...]):
        # Reusable unless gradients must flow into LoRA weights through the prefix.
        reuse = not (self.lora and torch.is_grad_enabled())
        key = (prefix, torch.is_autocast_enabled(self.device.type))
        if reuse and key in self._prefix_memo:
            return self._prefix_memo[key]
        ids = torch.tensor([prefix], device=self.device)
        with torch.no_grad() if reuse else contextlib.nullcontext():
            out = self.base.get_decoder()(input_ids=ids, use_cache=True)
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        if reuse:
            if len(self._prefix_memo) >= 64:
                self._prefix_memo.clear()
            self._prefix_memo[key] = kv
        return kv

    def hidden(self, batch: Batch, keep_cache: bool = False):
        """Final hidden states [B, S, H] of the non-prefix part (and the cache when asked)."""
        from transformers import DynamicCache

        B = batch.ids.shape[0]
        embeds = self.embed(batch)
        cache = None
        if batch.prefix:
            kv = self._prefix_kv(batch.prefix)
            cache = DynamicCache(ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv])
        out = self.base.get_decoder()(inputs_embeds=embeds, past_key_values=cache,
                                      use_cache=cache is not None or keep_cache)
        return out.last_hidden_state, out.past_key_values

    # -- closed-set head
    def label_scores(self, hidden: torch.Tensor, batch: Batch, cache=None) -> torch.Tensor:
        """[B, C] log-probability that the answer is each label, summed (in probability) over the label's
        spellings. Not length-normalised: dividing by the token count favours labels the tokenizer splits
        (" Disgust" = 3 tokens, the last two near-certain), and the plain sum is exactly the probability
        that generation produces the label. On the single-token fast path the scores are off by a per-row
        constant, which softmax ignores. Computed in fp32: bf16 logits are too coarse to rank."""
        head = self.base.get_output_embeddings()
        B = hidden.shape[0]
        h = hidden[torch.arange(B, device=hidden.device), batch.score_at].float()
        bias = getattr(head, "bias", None)
        with torch.autocast(device_type=self.device.type, enabled=False):
            if self.single_token:
                s = h @ head.weight[self.first_ids].float().T
                if bias is not None:
                    s = s + bias[self.first_ids].float()
                if self.multi:  # independent probabilities need real log-probabilities
                    s = s - torch.logsumexp(F.linear(h, head.weight.float(), None if bias is None else bias.float()), -1, keepdim=True)
            else:
                s = self._long_scores(h, batch, cache)
        return torch.logsumexp(s[:, None, :] + self.owner[None], dim=-1)

    def _long_scores(self, h: torch.Tensor, batch: Batch, cache) -> torch.Tensor:
        """Exact log-probabilities when some spelling has several tokens: those continue each row's cache."""
        head = self.base.get_output_embeddings()
        weight = head.weight.float()
        bias = None if getattr(head, "bias", None) is None else head.bias.float()
        B = h.shape[0]
        first = F.log_softmax(F.linear(h, weight, bias), dim=-1)[:, self.first_ids]  # [B, Q]
        long = [q for q, t in enumerate(self.label_seqs) if len(t) > 1]
        M, L = len(long), max(len(self.label_seqs[q]) for q in long) - 1
        P, S = len(batch.prefix), batch.ids.shape[1]
        cont = torch.full((B * M, L), int(self.first_ids[0]), device=self.device)
        for m, q in enumerate(long):
            toks = self.label_seqs[q][:-1]
            cont[m::M, : len(toks)] = torch.tensor(toks, device=self.device)
        pos = torch.arange(S, device=self.device)
        # Row b attends to the prefix, its own prompt (not its padding or training answer), the continuation.
        seen = torch.cat([torch.ones(B, P, dtype=torch.long, device=self.device),
                          (pos[None, :] <= batch.score_at[:, None]).long(),
                          torch.ones(B, L, dtype=torch.long, device=self.device)], dim=1)
        cache.batch_repeat_interleave(M)
        position_ids = (P + batch.score_at + 1).repeat_interleave(M)[:, None] + torch.arange(L, device=self.device)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.base.get_decoder()(input_ids=cont, attention_mask=seen.repeat_interleave(M, dim=0),
                                          position_ids=position_ids, past_key_values=cache, use_cache=True)
        logp = F.log_softmax(F.linear(out.last_hidden_state.float(), weight, bias), dim=-1)  # [B*M, L, V]
        scores = [first[:, q] for q in range(len(self.label_seqs))]
        for m, q in enumerate(long):
            toks = torch.tensor(self.label_seqs[q][1:], device=self.device)
            rest = logp[m::M, torch.arange(len(toks), device=self.device), toks].sum(-1)
            scores[q] = first[:, q] + rest
        return torch.stack(scores, dim=1)

    def class_logits(self, batch: Batch) -> torch.Tensor:
        batch = batch.to(self.device)
        with self.amp():
            hidden, cache = self.hidden(batch, keep_cache=not self.single_token)
            s = self.label_scores(hidden, batch, cache)
        return s + self.label_bias if self.multi else s

    def forward(self, batch: Batch) -> torch.Tensor:
        """Training loss of one batch."""
        batch = batch.to(self.device)
        with self.amp():
            hidden, cache = self.hidden(batch, keep_cache=not self.single_token)
            s = self.label_scores(hidden, batch, cache)
            loss = self.loss_fn(s + self.label_bias if self.multi else s, batch.targets)
            if self.lm_loss_weight > 0 and batch.lm_rows is not None and len(batch.lm_rows):
                h = hidden[batch.lm_rows, batch.lm_cols]
                logits = self.base.get_output_embeddings()(h).float()
                loss = loss + self.lm_loss_weight * F.cross_entropy(logits, batch.lm_targets)
        return loss

    # -- weights that training changes (+ the projectors' standardisation statistics)
    def trainable_state(self) -> dict[str, torch.Tensor]:
        state = {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}
        state.update({f"projectors.{n}": b for n, b in self.projectors.named_buffers()})
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        own = self.trainable_state()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise EmotuneError(f"saved weights do not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        params = dict(self.named_parameters())
        buffers = {f"projectors.{n}": b for n, b in self.projectors.named_buffers()}
        with torch.no_grad():
            for name, value in state.items():
                (params.get(name) if name in params else buffers[name]).copy_(value)
        self._prefix_memo.clear()


def label_spellings(tokenizer, names: list[str]) -> tuple[list[list[int]], list[int]]:
    """Token ids of each label as it follows the answer prefix, lower-case and (when that is one token)
    capitalised — chat models often answer " Neutral" — and the class each spelling belongs to. An end
    token is appended to every spelling when one spelling's ids start another's, so the shorter is not
    a free prefix of the longer."""
    seqs, owner = [], []
    for c, name in enumerate(names):
        for k, text in enumerate(dict.fromkeys([" " + name, " " + name[:1].upper() + name[1:]])):
            ids = tokenizer(text, add_special_tokens=False).input_ids
            if not ids:
                raise EmotuneError(f"label '{name}' tokenises to nothing with this backbone's tokenizer")
            if k > 0 and len(ids) > 1:
                continue  # a multi-token capitalised spelling would cost the single-token fast path
            if ids not in seqs:
                seqs.append(ids)
                owner.append(c)
    if sorted(set(owner)) != list(range(len(names))):
        raise EmotuneError(f"two labels tokenise identically with this backbone's tokenizer: {names}")
    if any(a != b and b[: len(a)] == a for a in seqs for b in seqs):
        seqs = [t + [tokenizer.eos_token_id] for t in seqs]
    return seqs, owner


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
        self.label_names = list(label_names)
        self.inputs = list(inputs)
        self.feature_shapes = {n: tuple(int(x) for x in feature_shapes[n]) for n in inputs}
        self.cfg, self.train_cfg, self.target, self.seed = cfg, train_cfg, target, seed
        self.templates = load_templates(cfg.prompts)
        self.eval_templates = load_templates(cfg.eval_prompts or cfg.prompts)
        lm, self.tokenizer = load_backbone(cfg.backbone, cfg.dtype)
        for p in lm.parameters():
            p.requires_grad_(False)
        attention = cfg.attention if cfg.attention != "auto" else ("sdpa" if torch.cuda.is_available() else "eager")
        lm.set_attn_implementation(attention)
        torch.manual_seed(seed)  # same initial projector / LoRA weights for every fold
        if cfg.lora.enabled:
            lm = self._add_lora(lm, cfg.lora)
        hidden_size = lm.config.get_text_config().hidden_size
        embed_rms = float(lm.get_input_embeddings().weight.float().pow(2).mean().sqrt())
        projectors = {
            n: Projector(self.feature_shapes[n][-1], hidden_size, cfg.tokens, cfg.projector, cfg.projector_hidden,
                         embed_rms, sequence=len(self.feature_shapes[n]) == 2)
            for n in self.inputs
        }
        self.renderer = PromptRenderer(self.tokenizer, self.label_names, self.inputs, target == "multi", cfg.max_text_chars)
        lm_weight = max(cfg.lm_loss_weight, 1.0) if target == "reasoning" else cfg.lm_loss_weight
        autocast = train_cfg.bf16 or cfg.dtype == "bf16"
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

    # -- building batches
    def _n_tokens(self, name: str, array: np.ndarray) -> int:
        return int(array.shape[0]) if len(self.feature_shapes[name]) == 2 else self.cfg.tokens

    def _features(self, ex: Examples, i: int, keep: Optional[set] = None) -> dict[str, np.ndarray]:
        out = {}
        for name in self.inputs:
            col = ex.features.get(name)
            if col is None:
                raise EmotuneError(f"examples have no feature column '{name}' (model inputs: {self.inputs})")
            a = col[i]
            if a is None or (keep is not None and name not in keep):
                continue
            a = np.asarray(a, dtype=np.float32)
            want = self.feature_shapes[name]
            if a.ndim != len(want) or a.shape[-1] != want[-1] or (a.ndim == 2 and a.shape[0] == 0):
                raise EmotuneError(f"sample {ex.ids[i]}: feature '{name}' has shape {a.shape}, the model expects {want}")
            if not np.isfinite(a).all():
                raise EmotuneError(f"sample {ex.ids[i]}: feature '{name}' holds NaN or infinite values")
            out[name] = a
        return out

    def _row(self, ex: Examples, i: int, t: Template, keep: Optional[set] = None, lead: Optional[str] = None,
             answer: Optional[str] = None) -> _Row:
        """One sample's ids: the prompt, for a reasoning target followed by `lead` (the reasoning) and the
        answer prefix; then, when training, `answer` (label or label list) and the end-of-turn token.
        `keep` limits the inputs shown (modality dropout): the others read as missing."""
        feats = self._features(ex, i, keep)
        n_tokens = {n: self._n_tokens(n, a) for n, a in feats.items()}
        reasoning = self.target == "reasoning"
        r = self.renderer.render(t, n_tokens, ex.texts[i], tuple(ex.context[i]), assistant_open=not reasoning)
        ids = list(r.ids)
        if reasoning:
            # The assistant turn is: reasoning, a line break, the answer prefix, then the label.
            ids += self.tokenizer((lead or "").strip() + "\n" + t.answer_prefix, add_special_tokens=False).input_ids
        row = _Row(ids, r.slots, score_at=len(ids) - 1, answer_start=len(ids), features=feats)
        if answer is not None:
            row.answer_start = len(r.ids)  # for reasoning, the loss covers the reasoning text too
            row.ids = ids + self.tokenizer(" " + answer, add_special_tokens=False).input_ids + [self.tokenizer.eos_token_id]
        return row

    def _collate(self, rows: list[_Row], targets=None, share_prefix: bool = True, left_pad: bool = False) -> Batch:
        pad = self.tokenizer.pad_token_id
        P = 0
        if share_prefix and len(rows) > 0:
            # The longest run of ids every row starts with, stopping before any slot and leaving each row
            # at least its last prompt token (whose hidden state is scored).
            limit = min(min([r.slots[0][0] for r in rows if r.slots] or [10 ** 9]),
                        min(min(r.score_at, r.answer_start - 1) for r in rows))
            first = rows[0].ids
            while P < limit and all(r.ids[P] == first[P] for r in rows):
                P += 1
        S = max(len(r.ids) for r in rows) - P
        ids = torch.full((len(rows), S), pad, dtype=torch.long)
        slot_mask = torch.zeros((len(rows), S), dtype=torch.bool)
        attn = torch.zeros((len(rows), S), dtype=torch.long) if left_pad else None
        score_at, features, owners = [], {n: [] for n in self.inputs}, {n: [] for n in self.inputs}
        lm_rows, lm_cols, lm_targets = [], [], []
        for b, r in enumerate(rows):
            body = r.ids[P:]
            shift = S - len(body) if left_pad else 0
            ids[b, shift: shift + len(body)] = torch.tensor(body)
            if attn is not None:
                attn[b, shift:] = 1
            for pos, _ in r.slots:
                slot_mask[b, pos - P + shift] = True
            score_at.append(r.score_at - P + shift)
            for name in self.inputs:  # prompt order of the inputs = the order of their slots
                if name in r.features:
                    features[name].append(r.features[name])
                    owners[name].append(b)
            for j in range(r.answer_start, len(r.ids)):  # token j is predicted from position j - 1
                lm_rows.append(b)
                lm_cols.append(j - 1 - P + shift)
                lm_targets.append(r.ids[j])
        batch = Batch(tuple(rows[0].ids[:P]), ids, slot_mask, features, owners, torch.tensor(score_at), attn)
        if targets is not None:
            batch.targets = torch.as_tensor(targets)
        if lm_rows:
            batch.lm_rows, batch.lm_cols = torch.tensor(lm_rows), torch.tensor(lm_cols)
            batch.lm_targets = torch.tensor(lm_targets)
        return batch

    # -- answers and targets
    def _answer(self, ex: Examples, i: int) -> str:
        if self.target == "multi":
            return ", ".join(n for c, n in enumerate(self.label_names) if ex.y_multi[i, c] > 0)
        if self.target == "soft":
            return self.label_names[int(np.argmax(ex.y_soft[i]))]
        return self.label_names[int(ex.y[i])]

    def _targets(self, ex: Examples) -> np.ndarray:
        return ex.targets(self.target)

    def _trainable(self, ex: Examples) -> np.ndarray:
        return np.flatnonzero(ex.has_target(self.target))

    def _reasoning(self, ex: Examples) -> list[str]:
        texts = getattr(ex, "reasoning", None)
        if texts is None or len(texts) != len(ex) or not all(isinstance(t, str) and t.strip() for t in texts):
            raise EmotuneError("target 'reasoning' needs a reasoning text for every training sample "
                               "(Examples.reasoning, from instruction data)")
        return list(texts)

    def make_batch(self, ex: Examples, index, generator: torch.Generator, reasoning: Optional[list[str]] = None) -> Batch:
        """A training batch: a template drawn per sample, inputs dropped at `modality_dropout`."""
        rows = []
        for i in index:
            i = int(i)
            t = self.templates[int(torch.randint(len(self.templates), (1,), generator=generator))]
            keep = None
            if self.cfg.modality_dropout > 0 and self.inputs:
                present = [n for n in self.inputs if ex.features[n][i] is not None]
                drop = torch.rand(len(present), generator=generator) < self.cfg.modality_dropout
                keep = {n for n, d in zip(present, drop.tolist()) if not d}
                if present and not keep and not ex.texts[i].strip():
                    keep = {present[int(torch.randint(len(present), (1,), generator=generator))]}  # never an empty prompt
            rows.append(self._row(ex, i, t, keep, lead=reasoning[i] if reasoning else None, answer=self._answer(ex, i)))
        targets = self._targets(ex)[np.asarray(index, dtype=int)]
        return self._collate(rows, torch.as_tensor(targets))

    # -- the EmotionModel protocol
    def fit(self, train: Examples, val: Examples, out_dir: Path, run_hash: str = "") -> dict:
        from emotune.train.losses import class_weights, make_loss
        from emotune.train.trainer import fit

        keep = self._trainable(train)
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
        kind = "focal" if tc.imbalance == "focal" else "ce"
        weights = class_weights(self._targets(train), len(self.label_names)) if tc.imbalance == "class_weights" else None
        self.net.loss_fn = make_loss(kind, weights, tc.focal_gamma, "single" if self.target == "reasoning" else self.target)
        task = _LMTask(self, train, val, reasoning)
        return fit(self.net, task, tc, Path(out_dir), self.seed, run_hash)

    def predict_proba(self, ex: Examples) -> np.ndarray:
        """[N, C] closed-set probabilities, averaged over the evaluation templates."""
        out = np.zeros((len(ex), len(self.label_names)), dtype=np.float64)
        if len(ex) == 0:
            return out.astype(np.float32)
        self.net.eval()
        with torch.no_grad():
            for t in self.eval_templates:
                leads = self._generated_reasoning(ex, t) if self.target == "reasoning" else [None] * len(ex)
                rows = [self._row(ex, i, t, lead=leads[i]) for i in range(len(ex))]
                for chunk in self._chunks(rows):
                    logits = self.net.class_logits(self._collate([rows[i] for i in chunk])).float()
                    p = torch.sigmoid(logits) if self.target == "multi" else torch.softmax(logits, dim=-1)
                    out[chunk] += p.cpu().numpy()
        return (out / len(self.eval_templates)).astype(np.float32)

    def generate(self, ex: Examples, max_new_tokens: Optional[int] = None) -> list[str]:
        """Greedy answers (the assistant's whole turn, answer prefix included) for the first eval template."""
        t = self.eval_templates[0]
        texts = self._generate(ex, t, max_new_tokens or self.cfg.max_new_tokens)
        return texts if self.target == "reasoning" else [t.answer_prefix + x for x in texts]

    def _generate(self, ex: Examples, t: Template, max_new_tokens: int) -> list[str]:
        out: list[str] = [""] * len(ex)
        if len(ex) == 0:
            return out
        self.net.eval()
        base = self.net.base
        rows = []
        for i in range(len(ex)):
            feats = self._features(ex, i)
            r = self.renderer.render(t, {n: self._n_tokens(n, a) for n, a in feats.items()}, ex.texts[i],
                                     tuple(ex.context[i]), assistant_open=self.target != "reasoning")
            rows.append(_Row(list(r.ids), r.slots, len(r.ids) - 1, len(r.ids), feats))
        tok = self.tokenizer
        with torch.no_grad(), self.net.amp():
            for chunk in self._chunks(rows):
                batch = self._collate([rows[i] for i in chunk], share_prefix=False, left_pad=True).to(self.net.device)
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

    def _chunks(self, rows: list[_Row]) -> list[np.ndarray]:
        # Similar lengths together: less padding.
        order = np.argsort([len(r.ids) for r in rows], kind="stable")
        size = max(1, self.train_cfg.eval_batch_size)
        return [order[k: k + size] for k in range(0, len(order), size)]

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


class _LMTask:
    """What the generic trainer needs from the emotion LM: batches, targets, a validation pass."""

    def __init__(self, model: EmotionLM, train: Examples, val: Examples, reasoning: Optional[list[str]] = None):
        self.model, self.train, self.val, self.reasoning = model, train, val, reasoning
        self.n_train = len(train)
        self.targets = model._targets(train)
        # For length grouping: prompt tokens of each sample under the first template.
        self.lengths = None
        if model.train_cfg.group_by_length:
            t = model.templates[0]
            self.lengths = np.array([len(model._row(train, i, t).ids) for i in range(len(train))])
        self.monitor = "map" if model.target == "multi" else "ua"

    def make_batch(self, index, generator: torch.Generator) -> Batch:
        return self.model.make_batch(self.train, index, generator, self.reasoning)

    def validate(self) -> dict:
        from emotune.evaluate.metrics import classification_metrics, multilabel_metrics

        val = self.val.subset(self.model._trainable(self.val)) if self.val is not None and len(self.val) else None
        if val is None or len(val) == 0:
            return {}
        probs = self.model.predict_proba(val)
        if self.model.target == "multi":
            m = multilabel_metrics(val.y_multi, probs > 0.5, val.label_names, scores=probs)
            return {k: m[k] for k in ("map", "macro_f1", "micro_f1")}
        m = classification_metrics(val.hard_labels(), probs.argmax(1), val.label_names)
        return {k: m[k] for k in ("ua", "wa", "macro_f1", "weighted_f1")}
