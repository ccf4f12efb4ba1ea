"""MERR fine-grained (Emotion-LLaMA's instruction data, Cheng et al. 2024): clues in words, a reasoning
paragraph and a pseudo-label per MER2023 clip, without media.

    merr_fine_grained.clean.json    {clip: {AU_list, visual_prior_list, audio_prior_list, peak_index,
                                            peak_AU_list, text, smp_reason_caption, pseu_emotion}}

Each sample keeps its subtitle as `text`, and in meta: `clues` (the facial, vocal and verbal clues as one
paragraph of words, what a reasoning model is given), `reasoning` (the reference paragraph) and the
separate clue fields. The label is MERR's pseudo-label (label set `merr`, 9 classes) — a model
ensemble's guess, not a human label. There is no official split: a seeded, label-stratified
`holdout` fraction (default 10%) becomes split `test`, the rest `train`; `emotune splits --protocol
official` then writes it to a split file. A sample whose label or reasoning is missing or empty is a
problem naming the clip.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from emotune.data.labels import load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row
from emotune.errors import EmotuneError

LABEL_SET = "merr"
OPTIONS = ("label_set", "file", "holdout", "seed", "trust_pickle")
DEFAULT_FILE = "merr_fine_grained.clean.json"


def clue_text(entry: dict) -> str:
    """The clues of one clip in words (only those it has)."""
    parts = []
    visual = [v for v in entry.get("visual_prior_list") or [] if isinstance(v, str) and v.strip()]
    if visual:
        parts.append("Face: " + "; ".join(v.strip() for v in visual) + ".")
    aus = [a for a in entry.get("peak_AU_list") or [] if isinstance(a, str)]
    if aus:
        parts.append("Action units at the peak frame: " + ", ".join(aus) + ".")
    audio = entry.get("audio_prior_list")
    if isinstance(audio, list):
        audio = " ".join(a for a in audio if isinstance(a, str))
    if isinstance(audio, str) and audio.strip():
        parts.append("Voice: " + audio.strip().removeprefix("and ").rstrip(".") + ".")
    text = (entry.get("text") or "").strip()
    if text:
        parts.append(f'Words: "{text}"')
    return " ".join(parts)


def holdout_ids(labels: dict[str, str], fraction: float, seed: int) -> set[str]:
    """A seeded, label-stratified `fraction` of the ids (at least one per label that has two or more)."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for sid, label in sorted(labels.items()):
        by_label[label].append(sid)
    rng = random.Random(seed)
    out: set[str] = set()
    for label in sorted(by_label):
        ids = by_label[label]
        rng.shuffle(ids)
        k = round(fraction * len(ids))
        if k == 0 and len(ids) >= 2 and fraction > 0:
            k = 1
        out.update(ids[:k])
    return out


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmotuneError(f"unknown merr option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    path = root / options.get("file", DEFAULT_FILE) if root.is_dir() else root
    try:
        fraction = float(options.get("holdout", 0.1))
        seed = int(options.get("seed", 0))
    except ValueError:
        raise EmotuneError("merr options holdout (a fraction) and seed (an integer) must be numbers") from None
    if not 0 <= fraction < 1:
        raise EmotuneError(f"merr option holdout must be in [0, 1), got {fraction}")
    if not path.exists():
        yield Problem(str(path), None, f"file not found (MERR fine-grained JSON; name it with --option file=)")
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        yield Problem(str(path), exc.lineno, f"not valid JSON ({exc.msg})")
        return
    if not isinstance(data, dict):
        yield Problem(str(path), None, "expected an object {clip name: {...}}")
        return
    labels = load_label_set(options.get("label_set") or LABEL_SET)
    good: dict[str, tuple[str, dict]] = {}
    for n, (clip, entry) in enumerate(data.items(), 1):
        where = f"entry {n} ({clip})"
        if not isinstance(entry, dict):
            yield Problem(str(path), n, f"{where}: expected an object")
            continue
        raw = entry.get("pseu_emotion")
        label = labels.canonical(raw) if isinstance(raw, str) else None
        if label is None:
            yield Problem(str(path), n, f"{where}: missing or unknown pseu_emotion {raw!r} ({', '.join(labels.full)})")
            continue
        reasoning = entry.get("smp_reason_caption")
        if not isinstance(reasoning, str) or not reasoning.strip():
            yield Problem(str(path), n, f"{where}: empty smp_reason_caption (the reference reasoning)")
            continue
        good[clip] = (label, entry)
    held = holdout_ids({c: lab for c, (lab, _) in good.items()}, fraction, seed)
    for n, (clip, (label, entry)) in enumerate(good.items(), 1):
        meta = {"clues": clue_text(entry), "reasoning": entry["smp_reason_caption"].strip(),
                "visual": entry.get("visual_prior_list") or [], "au": entry.get("AU_list") or [],
                "peak_au": entry.get("peak_AU_list") or [], "audio": entry.get("audio_prior_list") or "",
                "peak_index": entry.get("peak_index"), "label_kind": "pseudo-label (model ensemble)"}
        yield Row(Sample(id=clip, dataset="merr", label=label, labels=[label], text=(entry.get("text") or "").strip(),
                         split="test" if clip in held else "train", meta=meta), str(path), n)
