"""How close a generated explanation is to a reference one: ROUGE-L and MiniLM cosine.

ROUGE-L (Lin 2004) is the longest common subsequence of lower-cased word tokens, as an F1 of its
precision (LCS / candidate length) and recall (LCS / reference length); beta = 1, no stemming.
MiniLM cosine is the cosine of the two texts' mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings
(the `minilm` extractor), so a paraphrase that shares few words still scores as close.

`clue_restatement` is the floor any reasoning model must beat: it only restates the input clues.
"""

from __future__ import annotations

import json
import re
from typing import Optional

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


def judge_reasoning(out_dir, ids: list[str], generated: list[str], references: list[str], clues: list[str],
                    gold: Optional[list[Optional[str]]] = None, examples: int = 20) -> dict:
    """How good a reasoning model's generated explanations are, for `emotune eval --mode generate`:
    closeness to the reference reasoning (ROUGE-L, MiniLM cosine) beside the clue-restating floor on the
    same samples, and faithfulness to the input clues (emotune.evaluate.faithfulness).

    Writes out_dir/reasoning.jsonl (per sample: scores and unsupported assertions) and
    out_dir/hallucinations.jsonl (up to `examples` samples whose text asserts what the clues do not say).
    Where MiniLM cannot be loaded the cosine is None with a note; `--reuse` recomputes it later."""
    from pathlib import Path

    from emotune.evaluate.faithfulness import faithfulness
    from emotune.io import atomic_write_text

    out_dir = Path(out_dir)
    keep = [k for k, r in enumerate(references) if (r or "").strip()]
    gen = [generated[k] for k in keep]
    ref = [references[k] for k in keep]
    floor = [clue_restatement(clues[k], (gold[k] if gold and gold[k] else "")) for k in keep]
    rl = np.array([rouge_l(g, r) for g, r in zip(gen, ref)])
    rl_floor = np.array([rouge_l(f, r) for f, r in zip(floor, ref)])
    cos = cos_floor = None
    note = None
    try:
        cos = minilm_cosine(gen, ref)
        cos_floor = minilm_cosine(floor, ref)
    except Exception as exc:  # noqa: BLE001 — a machine without the MiniLM wheel still gets every other figure
        note = (f"MiniLM cosine not computed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                f"`emotune eval RUN --mode generate --reuse` recomputes it where all-MiniLM-L6-v2 is installed")
    faith = faithfulness(gen, [clues[k] for k in keep], examples=examples)
    mean = lambda a: None if a is None or len(a) == 0 else round(float(np.mean(a)), 4)
    summary = {
        "n": len(keep), "empty": sum(1 for g in gen if not g.strip()),
        "rouge_l": mean(rl), "minilm_cosine": mean(cos),
        "floor": {"what": "the input clues restated, then the gold label (emotune.evaluate.reasoning.clue_restatement)",
                  "rouge_l": mean(rl_floor), "minilm_cosine": mean(cos_floor)},
        "hallucination_rate": faith["hallucination_rate"], "assertions": faith["assertions"],
        "unsupported": faith["unsupported"], "samples_with_any": faith["samples_with_any"], "by_kind": faith["by_kind"],
    }
    if note:
        summary["note"] = note
    lines = []
    for j, k in enumerate(keep):
        per = faith["per_sample"][j]
        lines.append(json.dumps({"id": ids[k], "rouge_l": round(float(rl[j]), 4),
                                 "minilm_cosine": None if cos is None else round(float(cos[j]), 4),
                                 "assertions": per["assertions"], "unsupported": per["unsupported"],
                                 "generated": gen[j], "reference": ref[j], "clues": clues[k]}, ensure_ascii=False))
    atomic_write_text(out_dir / "reasoning.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    shown = [json.dumps({"id": ids[keep[e["index"]]], "unsupported": e["unsupported"], "generated": e["text"],
                         "clues": clues[keep[e["index"]]]}, ensure_ascii=False) for e in faith["examples"]]
    atomic_write_text(out_dir / "hallucinations.jsonl", "\n".join(shown) + ("\n" if shown else ""))
    return summary
