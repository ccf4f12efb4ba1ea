"""Samples → token rows → batches for the emotion LM: the one place prompts become ids.

`Batcher.row` renders one sample (its features' slot tokens, transcript, context) through the prompt
template, for training (with the answer), scoring (prompt up to the answer prefix) and generation
alike; `collate` lays rows out for one forward pass, finding the prefix they share.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import torch

from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from emotune.model.lm_net import Batch
from emotune.model.prompt import PromptRenderer, Template


@dataclasses.dataclass
class Row:
    ids: list[int]
    slots: list[tuple[int, str]]
    score_at: int  # index in ids of the last token before the label
    answer_start: int = 0  # index in ids of the first answer token (lm loss)
    features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


class Batcher:
    """Builds rows and batches for a model's label names, inputs and target (no weights here)."""

    def __init__(self, tokenizer, label_names: list[str], inputs: list[str], feature_shapes: dict[str, tuple],
                 tokens: int, target: str, max_text_chars: int, eval_batch_size: int,
                 reasoning_position: str = "before_label", input_layout: str = "lines", max_text_tokens: int = 0):
        self.tokenizer, self.label_names, self.inputs = tokenizer, list(label_names), list(inputs)
        self.feature_shapes, self.tokens, self.target = feature_shapes, tokens, target
        # A reasoning target whose reasoning comes before the label (else the label is scored right after
        # the prompt, as for a label-only target, and the reasoning follows it).
        self.reasoning_first = target == "reasoning" and reasoning_position == "before_label"
        self.eval_batch_size = eval_batch_size
        self.renderer = PromptRenderer(tokenizer, self.label_names, self.inputs, target == "multi", max_text_chars,
                                       input_layout, max_text_tokens)

    def n_tokens(self, name: str, array: np.ndarray) -> int:
        return int(array.shape[0]) if len(self.feature_shapes[name]) == 2 else self.tokens

    def features(self, ex: Examples, i: int, keep: Optional[set] = None) -> dict[str, np.ndarray]:
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

    def row(self, ex: Examples, i: int, t: Template, keep: Optional[set] = None, lead: Optional[str] = None,
            answer: Optional[str] = None, generating: bool = False, given: Optional[str] = None) -> Row:
        """One sample's ids: the prompt up to the answer prefix — for a reasoning-first target the prompt,
        `lead` (the reasoning) and then the answer prefix; when training, `answer` (label or label list),
        for a reasoning-after-label target a line break and `lead`, and the end-of-turn token.
        `keep` limits the inputs shown (modality dropout): the others read as missing. `generating`: the
        prompt as free generation starts from it (a reasoning-first model writes its reasoning itself);
        `given`: a label already answered, after which a reasoning-after-label model explains it."""
        feats = self.features(ex, i, keep)
        n_tokens = {n: self.n_tokens(n, a) for n, a in feats.items()}
        clues = ex.clues[i] if ex.clues else ""
        r = self.renderer.render(t, n_tokens, ex.texts[i], tuple(ex.context[i]), assistant_open=not self.reasoning_first,
                                 clues=clues)
        ids = list(r.ids)
        encode = lambda text: self.tokenizer(text, add_special_tokens=False).input_ids
        if self.reasoning_first and not generating:
            # The assistant turn is: reasoning, a line break, the answer prefix, then the label.
            ids += encode((lead or "").strip() + "\n" + t.answer_prefix)
        if given is not None:
            ids += encode(" " + given) + encode("\n")
        row = Row(ids, r.slots, score_at=len(ids) - 1, answer_start=len(ids), features=feats)
        if answer is not None:
            row.answer_start = len(r.ids)  # for reasoning, the loss covers the reasoning text too
            tail = encode(" " + answer)
            if self.target == "reasoning" and not self.reasoning_first:
                tail += encode("\n" + (lead or "").strip())
            row.ids = ids + tail + [self.tokenizer.eos_token_id]
        return row

    def collate(self, rows: list[Row], targets=None, share_prefix: bool = True, left_pad: bool = False) -> Batch:
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

    def answer(self, ex: Examples, i: int) -> str:
        if self.target == "multi":
            return ", ".join(n for c, n in enumerate(self.label_names) if ex.y_multi[i, c] > 0)
        if self.target == "soft":
            return self.label_names[int(np.argmax(ex.y_soft[i]))]
        return self.label_names[int(ex.y[i])]

    def make_batch(self, ex: Examples, index, generator: torch.Generator, templates: list[Template],
                   modality_dropout: float, reasoning: Optional[list[str]] = None, mixup: float = 0.0,
                   soft_targets: Optional[np.ndarray] = None) -> Batch:
        """A training batch: a template drawn per sample, inputs dropped at `modality_dropout`, features and
        targets mixed in pairs when `mixup` > 0 (see `mix`). `soft_targets` [N, C] (distillation) replace the
        samples' closed-set targets; the answer text stays each sample's own label."""
        rows = []
        for i in index:
            i = int(i)
            t = templates[int(torch.randint(len(templates), (1,), generator=generator))]
            keep = None
            if modality_dropout > 0 and self.inputs:
                present = [n for n in self.inputs if ex.features[n][i] is not None]
                drop = torch.rand(len(present), generator=generator) < modality_dropout
                keep = {n for n, d in zip(present, drop.tolist()) if not d}
                if present and not keep and not ex.texts[i].strip():
                    keep = {present[int(torch.randint(len(present), (1,), generator=generator))]}  # never an empty prompt
            rows.append(self.row(ex, i, t, keep, lead=reasoning[i] if reasoning else None, answer=self.answer(ex, i)))
        source = ex.targets(self.target) if soft_targets is None else soft_targets
        targets = torch.as_tensor(source[np.asarray(index, dtype=int)])
        if mixup > 0 and len(rows) > 1:
            targets = self.mix(rows, targets, mixup, generator)
        return self.collate(rows, targets)

    def mix(self, rows: list[Row], targets: torch.Tensor, alpha: float, generator: torch.Generator) -> torch.Tensor:
        """Mixup (`LMConfig.mixup`), in place on the rows' features: row b takes l_b·own + (1 - l_b)·partner's
        features, l_b ~ Beta(alpha, alpha) folded to >= 0.5 so its own prompt and answer text stay the
        dominant ones. Returns the targets mixed alike ([B, C]). A row whose partner has other inputs present,
        or that has no features at all, is left whole (l_b = 1): mixing labels without inputs is label noise.
        Sequences mix row by row when both have the same shape (an image grid's cells are the same places in
        every image); a pair whose sequences differ in length (speech of two durations) is left whole."""
        rng = np.random.default_rng(int(torch.randint(2 ** 31 - 1, (1,), generator=generator)))
        lam = rng.beta(alpha, alpha, len(rows))
        lam = np.maximum(lam, 1 - lam)
        partner = rng.permutation(len(rows))
        own = [dict(r.features) for r in rows]
        for b, r in enumerate(rows):
            other = own[partner[b]]
            if not own[b] or set(other) != set(own[b]) or any(a.shape != other[n].shape for n, a in own[b].items()):
                lam[b] = 1.0
                continue
            r.features = {n: (lam[b] * a + (1 - lam[b]) * other[n]).astype(np.float32) for n, a in own[b].items()}
        T = targets.float() if targets.ndim == 2 else torch.nn.functional.one_hot(targets.long(), len(self.label_names)).float()
        weight = torch.as_tensor(lam, dtype=torch.float32)[:, None]
        return weight * T + (1 - weight) * T[torch.as_tensor(partner)]

    def chunks(self, rows: list[Row]) -> list[np.ndarray]:
        # Similar lengths together: less padding.
        order = np.argsort([len(r.ids) for r in rows], kind="stable")
        size = max(1, self.eval_batch_size)
        return [order[k: k + size] for k in range(0, len(order), size)]

