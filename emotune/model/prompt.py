"""Prompt templates (YAML data in `prompts/`) rendered into token ids with slots for projected features.

A prompt is the backbone's own chat template around one user turn. The user turn holds one line per
feature input — its placeholder tokens, or the word "missing", so the model is told what it has —
then the preceding dialogue turns and the transcript where the template asks for them, then the
instruction. The assistant turn is opened with the template's `answer_prefix`; the answer follows
after a space (" angry"), which for SmolLM2 makes every RAVDESS/MELD label a single token.

Slots are not special tokens: the rendered text is cut at private-use markers and each piece is
tokenised on its own, so slot positions are known exactly without touching the vocabulary.
"""

from __future__ import annotations

import dataclasses
import re
import string
from pathlib import Path
from typing import Optional

import yaml

from emotune.errors import EmotuneError

PROMPT_DIR = Path(__file__).parent / "prompts"
SLOTS = {"inputs", "clues", "context", "transcript", "labels", "choose"}
_MARK = re.compile("\ue000([^\ue001]+)\ue001")

# Human words for common extractor names, so the prompt says what a line of tokens is.
_DESCRIBE = (
    ("whisper", "Speech encoder"), ("wav2vec", "Speech encoder"), ("hubert", "Speech encoder"),
    ("egemaps", "Acoustic (eGeMAPS)"), ("opensmile", "Acoustic"), ("prosody", "Prosody"),
    ("minilm", "Sentence embedding"), ("text", "Sentence embedding"),
    ("fer", "Facial expression"), ("face", "Facial expression"), ("image", "Image"), ("video", "Video"),
)


def describe_input(name: str) -> str:
    low = name.lower()
    for key, words in _DESCRIBE:
        if key in low:
            return f"{words} features ({name})"
    return f"Features ({name})"


@dataclasses.dataclass(frozen=True)
class Template:
    id: str
    user: str
    answer_prefix: str = "Emotion:"
    system: Optional[str] = None
    source: str = ""


def _read_pool(path: Path) -> list[Template]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EmotuneError(f"{path}: cannot read prompt templates ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict) or not data["templates"]:
        raise EmotuneError(f"{path}: expected a mapping with a non-empty 'templates:' section")
    out = []
    for tid, spec in data["templates"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("user"), str):
            raise EmotuneError(f"{path}: template '{tid}' needs a 'user:' text")
        fields = {f for _, f, _, _ in string.Formatter().parse(spec["user"]) if f is not None}
        unknown = fields - SLOTS
        if unknown:
            raise EmotuneError(f"{path}: template '{tid}' uses unknown slot(s) {sorted(unknown)}; known: {sorted(SLOTS)}")
        if "inputs" not in fields:
            raise EmotuneError(f"{path}: template '{tid}' must place {{inputs}} (where the feature tokens go)")
        out.append(Template(str(tid), spec["user"].strip(), str(spec.get("answer_prefix", "Emotion:")),
                            spec.get("system", data.get("system")), str(path)))
    return out


def builtin_templates() -> dict[str, Template]:
    found: dict[str, Template] = {}
    for path in sorted(PROMPT_DIR.glob("*.yaml")):
        for t in _read_pool(path):
            found.setdefault(t.id, t)
    return found


def load_templates(names: list[str]) -> list[Template]:
    """Template ids, built-in pool names (file stems: all their templates) or paths to YAML pools."""
    if not names:
        raise EmotuneError("model.lm.prompts is empty: name at least one prompt template")
    builtin = builtin_templates()
    out: list[Template] = []
    for name in names:
        path = Path(name).expanduser()
        if name.endswith((".yaml", ".yml")):
            if not path.exists():
                raise EmotuneError(f"prompt pool file not found: {name}")
            out += _read_pool(path)
        elif name in builtin:
            out.append(builtin[name])
        elif (PROMPT_DIR / f"{name}.yaml").exists():
            out += _read_pool(PROMPT_DIR / f"{name}.yaml")
        else:
            known = ", ".join(sorted(builtin) + sorted(p.stem for p in PROMPT_DIR.glob("*.yaml")))
            raise EmotuneError(f"unknown prompt template '{name}'; known: {known} (or a path to a .yaml pool)")
    return out


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclasses.dataclass
class Rendered:
    ids: list[int]  # the whole prompt, up to and including the answer prefix
    slots: list[tuple[int, str]]  # (position, input name) of every placeholder token, in order


class PromptRenderer:
    """Renders (template, present inputs, transcript, context) to ids; memoised, as prompts repeat."""

    def __init__(self, tokenizer, label_names: list[str], inputs: list[str], multi: bool, max_text_chars: int,
                 layout: str = "lines", max_text_tokens: int = 0):
        self.tok = tokenizer
        self.layout = layout
        self.inputs = list(inputs)
        self.labels = ", ".join(label_names)
        self.choose = "every emotion that applies (comma-separated)" if multi else "the one emotion"
        self.max_chars = max_text_chars
        self.max_tokens = max_text_tokens
        self.placeholder = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._memo: dict[tuple, Rendered] = {}

    def cut(self, text: str) -> str:
        """A transcript or context turn cut to max_text_chars characters, then to max_text_tokens tokens."""
        text = _cut(text, self.max_chars)
        if self.max_tokens:
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            if len(ids) > self.max_tokens:
                text = self.tok.decode(ids[: self.max_tokens - 1]).rstrip() + "…"
        return text

    def text(self, t: Template, n_tokens: dict[str, int], transcript: str, context: tuple[str, ...],
             assistant_open: bool = True, clues: str = "") -> str:
        """The rendered prompt with slot markers (each marker stands for n placeholder tokens)."""
        lines = []
        opening = ""  # slot marks that open the assistant's turn (layout "assistant")
        if self.layout == "assistant":
            # The user turn only names the inputs; their tokens open the assistant's turn, just before the
            # answer prefix, so with a fixed instruction every token before them is shared and computed
            # once. The label is still read after the answer prefix, a position where the LM predicts a
            # word (read straight after a feature token instead, training stayed at chance on RAVDESS).
            present = [n for n in self.inputs if n_tokens.get(n, 0) > 0]
            lines += [f"{describe_input(n)}: missing\n" for n in self.inputs if n not in present]
            if present:
                lines.append(f"{', then '.join(describe_input(n) for n in present)}: at the start of the answer\n")
                opening = "".join(f"\ue000{n}:{n_tokens[n]}\ue001" for n in present)
        elif self.layout == "grouped":
            # Missing inputs first, then one line naming the present inputs and holding all their tokens
            # (in input order, the order `EmotionLMNet.project` lays them out).
            present = [n for n in self.inputs if n_tokens.get(n, 0) > 0]
            lines += [f"{describe_input(n)}: missing\n" for n in self.inputs if n not in present]
            if present:
                marks = "".join(f"\ue000{n}:{n_tokens[n]}\ue001" for n in present)
                lines.append(f"{', then '.join(describe_input(n) for n in present)}: {marks}\n")
        else:
            for name in self.inputs:
                n = n_tokens.get(name, 0)
                body = f"\ue000{name}:{n}\ue001" if n > 0 else "missing"
                lines.append(f"{describe_input(name)}: {body}\n")
        context_text = ""
        if context:
            turns = "\n".join(self.cut(c) for c in context)
            context_text = f"Earlier in the conversation:\n{turns}\n"
        transcript_text = f'The person says: "{self.cut(transcript)}"\n' if transcript.strip() else ""
        # Clues in words (MERR: face, action units, tone, subtitle) are longer than one transcript.
        clues_text = f"Observed cues: {_cut(clues, 4 * self.max_chars)}\n" if clues.strip() else ""
        user = t.user.format(inputs="".join(lines), clues=clues_text, context=context_text, transcript=transcript_text,
                             labels=self.labels, choose=self.choose)
        messages = ([{"role": "system", "content": t.system}] if t.system else []) + [{"role": "user", "content": user}]
        rendered = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return rendered + opening + (t.answer_prefix if assistant_open else "")

    def render(self, t: Template, n_tokens: dict[str, int], transcript: str, context: tuple[str, ...],
               assistant_open: bool = True, clues: str = "") -> Rendered:
        key = (t, tuple(sorted(n_tokens.items())), transcript, context, assistant_open, clues)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._tokenize(self.text(t, n_tokens, transcript, context, assistant_open, clues))
        return hit

    def _tokenize(self, text: str) -> Rendered:
        ids: list[int] = []
        slots: list[tuple[int, str]] = []
        pos = 0
        for m in _MARK.finditer(text):
            ids += self.tok(text[pos:m.start()], add_special_tokens=False).input_ids
            name, n = m.group(1).rsplit(":", 1)
            slots += [(len(ids) + j, name) for j in range(int(n))]
            ids += [self.placeholder] * int(n)
            pos = m.end()
        ids += self.tok(text[pos:], add_special_tokens=False).input_ids
        return Rendered(ids, slots)
