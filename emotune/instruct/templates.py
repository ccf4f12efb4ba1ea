"""Prompt and question pools as data: `prompts/*.yaml`, replaceable file by file via `instruct.prompts_dir`.

Choices from a pool are a function of (seed, record id, slot) only, so a resumed run picks exactly the
templates an uninterrupted run would have, whatever order the records finish in.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Optional

import yaml

from emotune.data.sample import Sample
from emotune.errors import EmotuneError

PROMPTS_DIR = Path(__file__).parent / "prompts"
FILES = ("captions", "turns", "categorical", "reasoning", "conversation")

# Keys each file must define, so a user's replacement file fails at load time, not mid-run.
REQUIRED = {
    "captions": ("levels", "prosody_cues", "sentences", "face_words"),
    "turns": ("media_tokens", "transcript"),
    "categorical": ("questions", "answers"),
    "reasoning": ("format", "system", "user", "user_qa", "label_hint", "questions"),
    "conversation": ("format", "system", "user_qa", "label_hint", "simple_questions", "complex_questions"),
}
FORMATS = {"reasoning": ("answer", "qa"), "conversation": ("turns", "qa")}


def load_prompts(prompts_dir: Optional[str] = None) -> dict[str, dict]:
    """file stem -> its mapping; a file in `prompts_dir` replaces the built-in one of the same name."""
    out = {}
    for name in FILES:
        path = PROMPTS_DIR / f"{name}.yaml"
        if prompts_dir:
            user = Path(prompts_dir) / f"{name}.yaml"
            if not Path(prompts_dir).is_dir():
                raise EmotuneError(f"instruct.prompts_dir: {prompts_dir} is not a folder")
            if user.exists():
                path = user
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise EmotuneError(f"{path}: malformed YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise EmotuneError(f"{path}: expected a mapping at the top level")
        missing = [k for k in REQUIRED[name] if k not in data]
        if missing:
            raise EmotuneError(f"{path}: missing key(s) {', '.join(missing)}")
        if name in FORMATS and data["format"] not in FORMATS[name]:
            raise EmotuneError(f"{path}: format must be one of {', '.join(FORMATS[name])}, got {data['format']!r}")
        out[name] = data
    return out


def rng_for(seed: int, record_id: str, slot: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\0{record_id}\0{slot}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def main_medium(sample: Sample) -> str:
    for field in ("video", "audio", "image"):
        if getattr(sample, field):
            return field
    return "text"


def pool(spec, sample: Sample, what: str) -> list[str]:
    """The pool for the sample's main medium: spec[medium], else spec['default'] (or a plain list)."""
    if isinstance(spec, list):
        items = spec
    else:
        medium = main_medium(sample)
        items = spec.get(medium) or spec.get("default") or []
    if not items:
        raise EmotuneError(f"prompt pool '{what}' is empty for {main_medium(sample)} samples")
    return list(items)


def pick(items: list[str], seed: int, record_id: str, slot: str) -> str:
    return rng_for(seed, record_id, slot).choice(items)


def pick_distinct(items: list[str], n: int, seed: int, record_id: str, slot: str) -> list[str]:
    """n different entries when the pool has that many (repeats only after the pool is used up)."""
    rng = rng_for(seed, record_id, slot)
    out: list[str] = []
    while len(out) < n:
        batch = list(items)
        rng.shuffle(batch)
        out.extend(batch[: n - len(out)])
    return out


def first_human_turn(sample: Sample, question: str, turns: dict, include_transcript: bool) -> str:
    """Placeholders of the sample's media, the transcript (optional), then the question."""
    lines = []
    tokens = [turns["media_tokens"][f] for f in ("video", "audio", "image") if getattr(sample, f) and f in turns["media_tokens"]]
    if tokens:
        lines.append(" ".join(tokens))
    if include_transcript and sample.text and main_medium(sample) != "text":
        lines.append(turns["transcript"].format(text=sample.text))
    if main_medium(sample) == "text" and sample.text:
        lines.append(sample.text)  # a text-only sample: the text itself is the input
    lines.append(question)
    return "\n".join(lines)


def fill(template: str, **values) -> str:
    """str.format that names the template and the unknown field instead of a bare KeyError."""
    try:
        return template.format(**values)
    except (KeyError, IndexError) as exc:
        raise EmotuneError(f"prompt template uses unknown field {exc} (known: {', '.join(sorted(values))}): {template[:60]!r}") from None
