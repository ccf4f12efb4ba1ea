"""Reading LLM replies: one answer, or a list of question/answer pairs, or a reason why the reply is unusable.

Replies come from models of every size. A large one follows the requested layout but decorates it
(markdown, numbering, "Q1:", JSON); a small one adds a role label, repeats itself or stops mid-sentence.
Each function returns the usable content or raises `Unusable(reason)`; the caller retries and counts
the reason. Nothing here judges the emotion: that is `check_label`, through the evaluation's answer parser.
"""

from __future__ import annotations

import json
import re
from typing import Optional

from emotune.data.labels import LabelSet


class Unusable(Exception):
    """A reply that cannot become training data; `reason` is one short word for the counters."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# A role or field label at the start of a line: "Answer:", "**A2.**", "### Assistant -", "GPT:".
_Q_LABEL = r"(?:q(?:uestion)?|user|human|instruction)"
_A_LABEL = r"(?:a(?:nswer)?|assistant|gpt|response|bot)"
_LABEL_LINE = (r"^[ \t]*(?:[-*>#]+[ \t]*)?(?:\d+[.)][ \t]*)?(?:\*\*|__)?[ \t]*(?P<role>{role})[ \t]*\d*[ \t]*"
               r"(?:\*\*|__)?[ \t]*[:.\-\u2013\u2014][ \t]*(?:\*\*|__)?")
_QA_LINE = re.compile(_LABEL_LINE.format(role=f"{_Q_LABEL}|{_A_LABEL}"), re.IGNORECASE | re.MULTILINE)
_A_PREFIX = re.compile(_LABEL_LINE.format(role=_A_LABEL), re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_REFUSAL = re.compile(r"^(?:i'?m sorry|i am sorry|sorry,|as an ai|i cannot|i can'?t help|i'm unable|i am unable)",
                      re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def _strip(text: str) -> str:
    text = text.strip()
    text = re.sub(r"^(?:\*\*|__)(.*)(?:\*\*|__)$", r"\1", text, flags=re.DOTALL).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def _is_degenerate(words: list[str]) -> bool:
    """A loop ("I'm so sorry, I'm so sorry, ...") or one word over and over."""
    if len(words) < 12:
        return False
    grams = [tuple(w.lower() for w in words[i:i + 3]) for i in range(len(words) - 2)]
    return len(set(grams)) / len(grams) < 0.5


def clean_answer(text: Optional[str], truncated: bool = False, min_words: int = 3) -> str:
    """One answer's text, ready to be a training target, or Unusable(empty|refusal|too_short|degenerate).

    A leading role label is removed; when the model wrote a whole Q/A script, its first answer is kept;
    a reply cut off by max_tokens loses its unfinished last sentence (when a finished one remains).
    """
    if text is None or not text.strip():
        raise Unusable("empty")
    text = text.replace("\r\n", "\n").strip()
    pairs = _pairs(text)
    if pairs:
        text = pairs[0][1]
    text = _strip(_A_PREFIX.sub("", _strip(text), count=1))
    if truncated:
        ends = list(_SENTENCE_END.finditer(text))
        if ends and len(_WORD.findall(text[: ends[-1].end()])) >= min_words:
            text = text[: ends[-1].end()]
    text = re.sub(r"[ \t]+", " ", text).strip()
    if not text:
        raise Unusable("empty")
    if _REFUSAL.match(text):
        raise Unusable("refusal")
    words = _WORD.findall(text)
    if len(words) < min_words:
        raise Unusable("too_short")
    if _is_degenerate(words):
        raise Unusable("degenerate")
    return text


def _pairs(text: str) -> list[tuple[str, str]]:
    """Question/answer pairs marked by role labels at line starts, in order; [] when there are none."""
    marks = list(_QA_LINE.finditer(text))
    if not marks:
        return []
    pairs: list[tuple[str, str]] = []
    question: Optional[str] = None
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = _strip(text[m.end(): end])
        is_question = re.fullmatch(_Q_LABEL, m.group("role"), re.IGNORECASE) is not None
        if is_question:
            question = body
        elif question is not None and body:
            pairs.append((question, body))
            question = None
    return pairs


def _json_pairs(text: str) -> list[tuple[str, str]]:
    """Pairs from a JSON reply: [{"question", "answer"}...] or a LLaVA [{"from", "value"}...] list."""
    match = re.search(r"(\[.*\]|\{.*\})", text, re.DOTALL)
    if not match:
        return []
    try:
        data = json.loads(match.group(1))
    except ValueError:
        return []
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [data])
    if not isinstance(data, list):
        return []
    pairs: list[tuple[str, str]] = []
    turns: list[tuple[str, str]] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        lower = {str(k).lower(): v for k, v in item.items()}
        q, a = lower.get("question") or lower.get("q"), lower.get("answer") or lower.get("a")
        if isinstance(q, str) and isinstance(a, str):
            pairs.append((q.strip(), a.strip()))
        elif isinstance(lower.get("value"), str):
            turns.append((str(lower.get("from", lower.get("role", ""))).lower(), lower["value"].strip()))
    for (r1, q), (r2, a) in zip(turns[::2], turns[1::2]):
        if r1 in ("human", "user") and r2 in ("gpt", "assistant"):
            pairs.append((q, a))
    return pairs


def parse_qa(text: Optional[str], min_pairs: int = 1, truncated: bool = False) -> list[tuple[str, str]]:
    """Every question/answer pair in a reply (labelled lines or JSON), each answer cleaned, or Unusable.

    A reply cut off by max_tokens keeps its complete pairs: a last answer that is cut mid-sentence is
    trimmed to its last full sentence, or dropped if none.
    """
    if text is None or not text.strip():
        raise Unusable("empty")
    text = text.replace("\r\n", "\n").strip()
    raw = _json_pairs(text) if text.lstrip()[:1] in "[{`" else []
    raw = raw or _pairs(text)
    pairs = []
    for i, (q, a) in enumerate(raw):
        q = _strip(q)
        last = i == len(raw) - 1
        try:
            a = clean_answer(a, truncated=truncated and last)
        except Unusable:
            if truncated and last:
                continue
            raise
        if len(_WORD.findall(q)) < 2:
            raise Unusable("no_question")
        pairs.append((q, a))
    if len(pairs) < max(1, min_pairs):
        raise Unusable("no_qa_pairs" if not pairs else "too_few_pairs")
    return pairs


def implied_label(text: str, labels: LabelSet) -> Optional[str]:
    """The emotion a text commits to, read by the same parser that scores generated answers."""
    from emotune.evaluate.decode import parse_label

    return parse_label(text, labels)


def check_label(texts: list[str], gold: str, labels: LabelSet, mode: str) -> Optional[str]:
    """None when the texts may stand with the gold label; otherwise the reason to filter them.

    mode "contradiction": filtered when any text implies a label other than gold (MERR's filter);
    "match": also filtered when no text implies gold; "off": never filtered.
    """
    if mode == "off":
        return None
    implied = [implied_label(t, labels) for t in texts]
    if any(lab is not None and lab != gold for lab in implied):
        return "contradicts_label"
    if mode == "match" and gold not in implied:
        return "label_not_stated"
    return None
