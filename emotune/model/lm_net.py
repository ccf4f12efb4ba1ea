"""The emotion LM's trainable graph: `splice`, the `Batch` it reads, `EmotionLMNet` and label spellings.

Everything that feeds the LM goes through `EmotionLMNet.embed`, which embeds the prompt tokens and
calls `splice` — the single function that puts projected feature tokens in place of the placeholder
tokens — in training, closed-set scoring and generation alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotune.errors import EmotuneError
from emotune.model.projector import Projector


PACK_MAX_ROW, PACK_MAX_TOKENS = 16, 512  # when `EmotionLMNet.hidden` packs a batch's rows (see _packed_hidden)
MASK_KERNELS = ("eager", "sdpa")  # attention kernels that take a custom mask, which every packed form needs


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

        B, S = batch.ids.shape
        embeds = self.embed(batch)
        P = len(batch.prefix)
        # Short rows after a shared prefix are packed into one sequence; its mask grows with the square of
        # the packed length, hence the limits (RAVDESS-like rows are 2-6 tokens, transcripts far longer).
        packable = self.base.config._attn_implementation in MASK_KERNELS
        if packable and P and not keep_cache and batch.attention_mask is None and 1 < B and S <= PACK_MAX_ROW \
                and B * S <= PACK_MAX_TOKENS:
            return self._packed_hidden(batch, embeds), None
        cache = None
        if batch.prefix:
            kv = self._prefix_kv(batch.prefix)
            cache = DynamicCache(ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv])
        out = self.base.get_decoder()(inputs_embeds=embeds, past_key_values=cache,
                                      use_cache=cache is not None or keep_cache)
        return out.last_hidden_state, out.past_key_values

    def _packed_hidden(self, batch: Batch, embeds: torch.Tensor) -> torch.Tensor:
        """`hidden` with the rows after the shared prefix laid end to end as one sequence: each token sees
        the prefix and the earlier tokens of its own row (a block-diagonal causal mask) at its own row's
        positions, so it computes what the batched form does. The prefix's keys and values are then used
        once instead of being copied for every row at every layer (for 4-token rows those copies took about
        a quarter of scoring time on a CPU, half as much as the matmuls)."""
        from transformers import DynamicCache

        B, S, H = embeds.shape
        P = len(batch.prefix)
        dev = embeds.device
        row = torch.arange(B, device=dev).repeat_interleave(S)
        pos = torch.arange(S, device=dev).repeat(B)
        seen = (row[:, None] == row[None, :]) & (pos[None, :] <= pos[:, None])
        seen = torch.cat([torch.ones(B * S, P, dtype=torch.bool, device=dev), seen], dim=1)
        # SDPA takes a boolean mask (a float one must match the query's dtype, bf16 under autocast); the
        # eager kernel adds the mask to its scores.
        mask = seen if self.base.config._attn_implementation == "sdpa" else \
            torch.zeros(seen.shape, dtype=embeds.dtype, device=dev).masked_fill(~seen, torch.finfo(embeds.dtype).min)
        cache = DynamicCache(ddp_cache_data=list(self._prefix_kv(batch.prefix)))
        out = self.base.get_decoder()(inputs_embeds=embeds.reshape(1, B * S, H), attention_mask=mask[None, None],
                                      position_ids=(P + pos)[None], past_key_values=cache, use_cache=True)
        return out.last_hidden_state.view(B, S, H)

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
        cont = torch.full((M, L), int(self.first_ids[0]), device=self.device)  # the tokens each label continues with
        for m, q in enumerate(long):
            toks = self.label_seqs[q][:-1]
            cont[m, : len(toks)] = torch.tensor(toks, device=self.device)
        # Rows of `last` below: row b's label m at b * M + m.
        if self.base.config._attn_implementation in MASK_KERNELS:
            last = self._packed_continuations(cont, batch, cache).reshape(B * M, L, -1)
        else:
            pos = torch.arange(S, device=self.device)
            # Row b attends to the prefix, its own prompt (not its padding or training answer), the continuation.
            seen = torch.cat([torch.ones(B, P, dtype=torch.long, device=self.device),
                              (pos[None, :] <= batch.score_at[:, None]).long(),
                              torch.ones(B, L, dtype=torch.long, device=self.device)], dim=1)
            cache.batch_repeat_interleave(M)
            position_ids = (P + batch.score_at + 1).repeat_interleave(M)[:, None] + torch.arange(L, device=self.device)
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                last = self.base.get_decoder()(input_ids=cont.repeat(B, 1), attention_mask=seen.repeat_interleave(M, dim=0),
                                               position_ids=position_ids, past_key_values=cache,
                                               use_cache=True).last_hidden_state
        logp = F.log_softmax(F.linear(last.float(), weight, bias), dim=-1)  # [B*M, L, V]
        scores = [first[:, q] for q in range(len(self.label_seqs))]
        for m, q in enumerate(long):
            toks = torch.tensor(self.label_seqs[q][1:], device=self.device)
            rest = logp[m::M, torch.arange(len(toks), device=self.device), toks].sum(-1)
            scores[q] = first[:, q] + rest
        return torch.stack(scores, dim=1)

    def _packed_continuations(self, cont: torch.Tensor, batch: Batch, cache) -> torch.Tensor:
        """[B, M*L, H]: every row's M label continuations (cont, [M, L]) laid end to end after its own cache, each
        token seeing the prefix, the row's prompt and the earlier tokens of its own label (a block-diagonal mask),
        at the positions it would have alone. Copying the cache once per label instead holds B x M copies of every
        layer's keys and values (kept for the backward pass in training); here each row's cache is used once."""
        B, S = batch.ids.shape
        P = len(batch.prefix)
        M, L = cont.shape
        dev = self.device
        label = torch.arange(M, device=dev).repeat_interleave(L)
        step = torch.arange(L, device=dev).repeat(M)
        block = (label[:, None] == label[None, :]) & (step[None, :] <= step[:, None])  # [M*L, M*L]
        prompt = torch.arange(S, device=dev)[None, :] <= batch.score_at[:, None]  # [B, S]
        seen = torch.cat([torch.ones(B, M * L, P, dtype=torch.bool, device=dev),
                          prompt[:, None, :].expand(B, M * L, S), block[None].expand(B, -1, -1)], dim=2)
        dtype = self.base.get_input_embeddings().weight.dtype
        # As in _packed_hidden: SDPA takes the boolean mask; the eager kernel adds a float one to its scores.
        mask = seen if self.base.config._attn_implementation == "sdpa" else \
            torch.zeros(seen.shape, dtype=dtype, device=dev).masked_fill(~seen, torch.finfo(dtype).min)
        position_ids = (P + batch.score_at + 1)[:, None] + step[None, :]
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.base.get_decoder()(input_ids=cont.reshape(1, M * L).expand(B, -1), attention_mask=mask[:, None],
                                          position_ids=position_ids, past_key_values=cache, use_cache=True)
        return out.last_hidden_state

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
        # Every projector weight, frozen or not (model.lm.probe_freeze): a model rebuilt from its config starts
        # them at random, so they belong to what a run saves.
        state = {n: p.detach() for n, p in self.named_parameters() if p.requires_grad or n.startswith("projectors.")}
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
