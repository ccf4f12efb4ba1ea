"""`Examples`: one side of a fold (train / val / test) as arrays every model kind consumes.

Built from a manifest, a list of ids, the label set and cached feature columns. This is the only thing
the baselines and the emotion LM see, so both read the same samples, features and targets.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from emotune.data.labels import LabelSet
from emotune.data.sample import Sample


@dataclasses.dataclass
class Examples:
    ids: list[str]
    label_names: list[str]
    features: dict[str, list[Optional[np.ndarray]]]  # extractor name -> per-sample array (None = missing)
    texts: list[str]  # transcript / utterance ("" when none)
    context: list[list[str]]  # preceding dialogue turns as "Speaker: text", oldest first (may be empty)
    y: np.ndarray  # [N] class index of the single label, -1 when the sample has none
    y_multi: np.ndarray  # [N, C] 0/1 multi-label targets
    y_soft: np.ndarray  # [N, C] soft targets, rows sum to 1 (one-hot when no votes)
    groups: list[Optional[str]] = dataclasses.field(default_factory=list)
    reasoning: Optional[list[str]] = None  # reasoning text per sample (target "reasoning"), "" when none
    clues: Optional[list[str]] = None  # clues in words per sample (MERR's face/tone/words), "" when none

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> "Examples":
        idx = np.asarray(index, dtype=int)
        pick = lambda xs: [xs[i] for i in idx]
        return Examples(pick(self.ids), self.label_names, {k: pick(v) for k, v in self.features.items()},
                        pick(self.texts), pick(self.context), self.y[idx], self.y_multi[idx], self.y_soft[idx],
                        pick(self.groups) if self.groups else [], pick(self.reasoning) if self.reasoning else None,
                        pick(self.clues) if self.clues else None)

    def present(self, name: str) -> np.ndarray:
        """[N] bool: which samples have feature `name`."""
        return np.array([v is not None for v in self.features[name]], dtype=bool)

    # -- targets: one definition for every model kind (emotune.vocab.TARGETS)
    def targets(self, target: str) -> np.ndarray:
        """[N] class index (single, reasoning: scored on the label), or [N, C] 0/1 (multi) / weights (soft)."""
        return {"multi": self.y_multi, "soft": self.y_soft}.get(target, self.y)

    def has_target(self, target: str) -> np.ndarray:
        """[N] bool: the samples that carry a target of this kind (the rest cannot be trained or scored)."""
        if target in ("single", "reasoning"):
            return self.y >= 0
        return self.targets(target).sum(axis=1) > 0

    def hard_labels(self) -> np.ndarray:
        """[N] class index for UA: the single label, else the strongest soft vote, else -1."""
        soft_top = np.where(self.y_soft.sum(axis=1) > 0, self.y_soft.argmax(axis=1), -1)
        return np.where(self.y >= 0, self.y, soft_top)

    def concat(self, other: "Examples") -> "Examples":
        """These samples followed by `other`'s (a feature one side lacks reads as missing there)."""
        if len(other) == 0:
            return self
        names = sorted(set(self.features) | set(other.features))
        both = lambda a, b: list(a) + list(b)
        reasoning = None
        if self.reasoning is not None or other.reasoning is not None:
            reasoning = both(self.reasoning or [""] * len(self), other.reasoning or [""] * len(other))
        clues = None
        if self.clues is not None or other.clues is not None:
            clues = both(self.clues or [""] * len(self), other.clues or [""] * len(other))
        return Examples(
            ids=both(self.ids, other.ids), label_names=self.label_names,
            features={k: both(self.features.get(k, [None] * len(self)), other.features.get(k, [None] * len(other)))
                      for k in names},
            texts=both(self.texts, other.texts), context=both(self.context, other.context),
            y=np.concatenate([self.y, other.y]), y_multi=np.concatenate([self.y_multi, other.y_multi]),
            y_soft=np.concatenate([self.y_soft, other.y_soft]),
            groups=both(self.groups, other.groups) if self.groups and other.groups else [], reasoning=reasoning,
            clues=clues)


def words_clue(text: str) -> str:
    """A transcript as a clue, in the form MERR's clues give the subtitle (the clue text of a sample that
    has words but no measured clues: MER2023 subtitles, a transcript at prediction time)."""
    text = " ".join(text.split())
    return f'Words: "{text}"' if text else ""


def dialogue_context(samples: list[Sample], turns: int) -> dict[str, list[str]]:
    """The `turns` utterances before each sample in its dialogue (meta dialogue/turn, same split)."""
    if turns <= 0:
        return {}
    by_dialogue: dict[tuple, list[Sample]] = {}
    for s in samples:
        if "dialogue" in s.meta and "turn" in s.meta:
            by_dialogue.setdefault((s.split, s.meta["dialogue"]), []).append(s)
    out: dict[str, list[str]] = {}
    for members in by_dialogue.values():
        members.sort(key=lambda s: s.meta["turn"])
        for i, s in enumerate(members):
            prev = members[max(0, i - turns): i]
            out[s.id] = [f"{p.meta.get('speaker', 'Speaker')}: {p.text}" for p in prev]
    return out


def build_examples(samples: list[Sample], ids: list[str], labels: LabelSet,
                   features: dict[str, dict[str, np.ndarray]], context_turns: int = 0,
                   reasoning: Optional[dict[str, str]] = None) -> Examples:
    """`features[name][id]` is the cached array of extractor `name` for sample `id` (absent = missing);
    `reasoning[id]` the reasoning text of a sample (instruction data), for the reasoning target."""
    by_id = {s.id: s for s in samples}
    context = dialogue_context(samples, context_turns)
    # Shown where a prompt has {clues}: the dataset's clues in words (MERR), else the words said.
    clues = [str(by_id[i].meta.get("clues") or "") or words_clue(by_id[i].text or "") for i in ids]
    C = len(labels)
    y = np.full(len(ids), -1, dtype=np.int64)
    y_multi = np.zeros((len(ids), C), dtype=np.float32)
    y_soft = np.zeros((len(ids), C), dtype=np.float32)
    for n, i in enumerate(ids):
        s = by_id[i]
        single = labels.to_subset(s.label)
        if single is not None:
            y[n] = labels.index(single)
        for name in labels.map_many(s.labels or ([s.label] if s.label else [])):
            y_multi[n, labels.index(name)] = 1.0
        soft = labels.map_soft(s.soft)
        if soft:
            for name, w in soft.items():
                y_soft[n, labels.index(name)] = w
        elif y_multi[n].sum() > 0:
            y_soft[n] = y_multi[n] / y_multi[n].sum()
    return Examples(
        ids=list(ids), label_names=list(labels.names),
        features={name: [col.get(i) for i in ids] for name, col in features.items()},
        texts=[by_id[i].text or "" for i in ids], context=[context.get(i, []) for i in ids],
        y=y, y_multi=y_multi, y_soft=y_soft, groups=[by_id[i].group for i in ids],
        reasoning=[reasoning.get(i, "") for i in ids] if reasoning is not None else None,
        clues=clues if any(clues) else None,
    )
