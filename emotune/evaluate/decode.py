"""Read a label out of generated text, honestly: an answer we cannot read is None (counted as invalid),
never mapped to a class.

`parse_label(text, labels)` returns the first label named in the answer that is not negated; `parse_labels`
returns every such label (multi-label answers such as "angry, frustrated") in class order. Words are matched
whole, case- and punctuation-insensitively, through the label set's own names and aliases and the synonym
groups of `answer_lexicon.yaml` ("furious" → angry, "happiness" → joy for MELD). Rules, in order:

1. If the answer holds an answer marker ("Answer:", "the emotion is", ...), only the text after the last
   marker is read, so a reasoning text that ends in its label is judged by that label.
2. A label within `negation_window` words after a negator in the same clause does not count
   ("not angry", "no sign of anger", "sad rather than angry"); "no doubt", "not only" are not negations.
3. A word that names a label outside the chosen subset (IEMOCAP 4-class: "frustrated") is no answer;
   reading goes on. Bare numbers never count (label-set codes such as "05" are for annotation files).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Optional

import yaml

from emotune.data.labels import LabelSet
from emotune.errors import EmotuneError

LEXICON_PATH = Path(__file__).parent / "answer_lexicon.yaml"

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[.,;:!?()\[\]/\n]")
_ITEM_SEP = {",", ";", "/", "\n"}
_ARTICLES = {"a", "an", "the"}


@dataclasses.dataclass(frozen=True)
class _Lexicon:
    labels: dict  # phrase (tuple of words) -> class name, or None for a label outside the subset
    negators: frozenset
    not_negations: frozenset
    breaks: frozenset
    whole_only: frozenset
    markers: tuple
    window: int
    longest: int


@functools.lru_cache(maxsize=1)
def _lexicon_data() -> dict:
    data = yaml.safe_load(LEXICON_PATH.read_text(encoding="utf-8"))
    # YAML reads a bare no/yes/on/off as a boolean: every entry must be quoted text.
    entries = [w for g in data["groups"] for w in [*g["words"], *(g.get("else") or [])]]
    for key in ("whole_answer_only", "negators", "not_negations", "clause_breaks", "answer_markers"):
        entries += data.get(key) or []
    bad = [repr(w) for w in entries if not isinstance(w, str)]
    if bad:
        raise EmotuneError(f"{LEXICON_PATH.name}: entries must be quoted text, got {', '.join(bad)}")
    return data


def _normalise(text: str) -> str:
    text = str(text).lower().replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"[-_]+", " ", text)


def _phrase(text: str) -> tuple[str, ...]:
    return tuple(t for t in _TOKEN.findall(_normalise(text)) if t[0].isalpha())


def _resolve(labels: LabelSet, word: str) -> tuple[bool, Optional[str]]:
    """(known, class): is `word` a name/alias of the label set, and its class in the subset (None if outside)."""
    canon = labels.canonical(word)
    if canon is None:
        return False, None
    return True, labels.to_subset(canon)


def _build(labels: LabelSet) -> _Lexicon:
    data = _lexicon_data()
    table: dict[tuple[str, ...], Optional[str]] = {}
    for raw in list(labels.full) + [a for a in labels.aliases if not str(a).strip().isdigit()]:
        phrase = _phrase(raw)
        if phrase:
            table[phrase] = _resolve(labels, raw)[1]
    for name in labels.names:  # subset-only names (e.g. "positive" made by a merge)
        table.setdefault(_phrase(name), name)
    for group in data["groups"]:
        for candidate in list(group["words"]) + list(group.get("else") or []):
            known, cls = _resolve(labels, candidate)
            if not known and candidate in labels.names:
                known, cls = True, candidate
            if known:
                for w in group["words"]:
                    table.setdefault(_phrase(w), cls)
                break
    phrases = lambda key: frozenset(_phrase(p) for p in data.get(key) or [])
    negators, not_neg = phrases("negators"), phrases("not_negations")
    return _Lexicon(
        labels=table, negators=negators, not_negations=not_neg, breaks=phrases("clause_breaks"),
        whole_only=phrases("whole_answer_only"), markers=tuple(_normalise(m) for m in data.get("answer_markers") or []),
        window=int(data.get("negation_window", 5)),
        longest=max(len(p) for p in [*table, *negators, *not_neg]),
    )


# LabelSet holds dicts (unhashable), so the cache is keyed by the fields that define it.
_BUILT: dict[tuple, _Lexicon] = {}


def _lexicon_for(labels: LabelSet) -> _Lexicon:
    key = (labels.name, labels.subset, labels.full, labels.names, tuple(sorted(labels.aliases.items())),
           tuple(sorted(labels.merge.items())))
    if key not in _BUILT:
        _BUILT[key] = _build(labels)
    return _BUILT[key]


def _answer_region(text: str, lex: _Lexicon) -> str:
    norm = _normalise(text)
    cut = -1
    for marker in lex.markers:
        for m in re.finditer(r"(?<![a-z])" + re.escape(marker), norm):
            cut = max(cut, m.end())
    return norm[cut:] if cut >= 0 else norm


def _mentions(text: str, labels: LabelSet) -> list[tuple[Optional[str], bool]]:
    """Every label word in the answer region, in order: (class or None if outside the subset, negated)."""
    lex = _lexicon_for(labels)
    tokens = _TOKEN.findall(_answer_region(text, lex))
    # Item boundaries (commas, slashes, line breaks) decide whether a "whole answer only" word counts.
    item_of, item = [], 0
    for t in tokens:
        if t in _ITEM_SEP:
            item += 1
        item_of.append(item)
    item_words: dict[int, list[str]] = {}
    for t, k in zip(tokens, item_of):
        if t[0].isalpha() and t not in _ARTICLES:
            item_words.setdefault(k, []).append(t)

    out: list[tuple[Optional[str], bool]] = []
    last_negator: Optional[int] = None  # word position of the latest negator in the current clause
    words_seen = 0
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if not t[0].isalpha():
            last_negator = None  # punctuation ends the clause
            i += 1
            continue
        match = None
        for n in range(min(lex.longest, len(tokens) - i), 0, -1):
            cand = tuple(tokens[i:i + n])
            if not all(c[0].isalpha() for c in cand):
                continue
            if cand in lex.not_negations:
                match = ("skip", cand)
            elif cand in lex.negators:
                match = ("neg", cand)
            elif cand in lex.labels:
                match = ("label", cand)
            if match:
                break
        if match is None and (t.endswith("n't") or t in lex.negators):
            match = ("neg", (t,))
        if match is None:
            if (t,) in lex.breaks:
                last_negator = None
            words_seen += 1
            i += 1
            continue
        kind, cand = match
        if kind == "neg":
            last_negator = words_seen + len(cand) - 1
        elif kind == "label":
            whole_ok = cand not in lex.whole_only or tuple(item_words.get(item_of[i], [])) == cand
            if whole_ok:
                negated = last_negator is not None and words_seen - last_negator <= lex.window
                out.append((lex.labels[cand], negated))
        words_seen += len(cand)
        i += len(cand)
    return out


def parse_label(text: Optional[str], labels: LabelSet) -> Optional[str]:
    """The first label the answer names (not negated, inside the subset), or None: an invalid answer."""
    if not text:
        return None
    for cls, negated in _mentions(text, labels):
        if cls is not None and not negated:
            return cls
    return None


def parse_labels(text: Optional[str], labels: LabelSet) -> Optional[list[str]]:
    """Every label the answer names (not negated), deduplicated in class order; None when there is none."""
    if not text:
        return None
    found = {cls for cls, negated in _mentions(text, labels) if cls is not None and not negated}
    return [n for n in labels.names if n in found] or None
