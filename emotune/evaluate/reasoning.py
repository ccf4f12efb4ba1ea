"""How close a generated explanation is to a reference one: ROUGE-L and MiniLM cosine.

ROUGE-L (Lin 2004) is the longest common subsequence of lower-cased word tokens, as an F1 of its
precision (LCS / candidate length) and recall (LCS / reference length); beta = 1, no stemming.
MiniLM cosine is the cosine of the two texts' mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings
(the `minilm` extractor), so a paraphrase that shares few words still scores as close.

`clue_restatement` is the floor any reasoning model must beat: it only restates the input clues.
"""

from __future__ import annotations

import re

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str) -> float:
    c, r = words(candidate), words(reference)
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return 2 * p * rec / (p + rec)


def minilm_cosine(candidates: list[str], references: list[str]) -> np.ndarray:
    """[N] cosine of each candidate with its reference (MiniLM, as the `minilm` extractor embeds text)."""
    from emotune.features.base import Source, get_extractor

    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} references")
    enc = get_extractor("minilm")

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for k in range(0, len(texts), enc.batch_size):
            rows += [o.value for o in enc.compute_batch([Source.of_text(t or " ") for t in texts[k: k + enc.batch_size]])]
        return np.stack(rows) if rows else np.zeros((0, 384), np.float32)

    return np.sum(embed(candidates) * embed(references), axis=1)


def clue_restatement(clues: str, label: str) -> str:
    """The template baseline: the clues said back, then the label — no reasoning of its own."""
    return f"{clues.strip()} So the emotion is {label}."


def closeness(candidates: list[str], references: list[str]) -> dict:
    """Mean ROUGE-L and MiniLM cosine over pairs, with the per-sample values."""
    rl = np.array([rouge_l(c, r) for c, r in zip(candidates, references)])
    cos = minilm_cosine(candidates, references)
    return {"rouge_l": float(rl.mean()) if len(rl) else None, "minilm_cosine": float(cos.mean()) if len(cos) else None,
            "n": len(rl), "per_sample": {"rouge_l": rl.round(4).tolist(), "minilm_cosine": cos.round(4).tolist()}}
