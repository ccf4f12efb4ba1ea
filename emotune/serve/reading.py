"""What a trained run's model reads, decided from its config alone, and how a prediction reports it.

predict, the HTTP API and the demo all list exactly the inputs the model used, and label anything given
that it does not read as "not used by this model": a face shown beside a prediction from an audio-only
model, or a transcript beside a model that never sees text, would tell the user something false.
"""

from __future__ import annotations

import string
from typing import Optional

NOT_USED = "not used by this model"


def reads_text(cfg) -> bool:
    """Whether a transcript changes this run's prediction: a text-encoder input (minilm, a text hf model),
    or an emotion LM whose evaluation prompt shows the transcript.

    This is also the only reason predict runs ASR: a model that reads no text never pays for Whisper.
    """
    if "text" in read_inputs(cfg):
        return True
    return cfg.model.kind == "emotion_lm" and prompt_shows_transcript(cfg)


def prompt_shows_transcript(cfg) -> bool:
    """Whether any of the LM's evaluation templates places the {transcript} slot, or {clues}, which holds
    the words said when a sample has no clues of its own."""
    from emotune.model.prompt import load_templates

    lm = cfg.model.lm
    for template in load_templates(lm.eval_prompts or lm.prompts):
        if any(field in ("transcript", "clues") for _, field, _, _ in string.Formatter().parse(template.user)):
            return True
    return False


def read_inputs(cfg) -> dict[str, list[str]]:
    """modality → the run's feature inputs computed from it ({"audio": ["egemaps", "whisper"], "face": ["fer"]}).

    Inputs the run removes at test time (`eval.drop_inputs`) are not read, so they are not listed.
    """
    from emotune.features.base import get_extractor

    dropped = set(cfg.eval.drop_inputs)
    out: dict[str, list[str]] = {}
    for name in cfg.model.inputs:
        if name not in dropped:
            out.setdefault(get_extractor(name).modality, []).append(name)
    return out


def describe_model(inputs: dict[str, list[str]], text: bool, prompt: bool) -> str:
    """One sentence for people: 'This model reads audio (egemaps) and text (minilm); it does not read faces.'"""
    parts = [f"audio ({', '.join(inputs['audio'])})"] if "audio" in inputs else []
    if "face" in inputs:
        parts.append(f"faces ({', '.join(inputs['face'])})")
    if text:
        how = [*inputs.get("text", []), *(["the transcript in its prompt"] if prompt else [])]
        parts.append(f"text ({', '.join(how)}; typed, or transcribed from the speech by Whisper)")
    absent = [w for w, on in (("audio", "audio" in inputs), ("faces", "face" in inputs), ("text", text)) if not on]
    sentence = "This model reads " + " and ".join(parts) if parts else "This model reads nothing"
    return sentence + (f"; it does not read {' or '.join(absent)}." if absent else ".")


def used_inputs(given: dict[str, bool], feats: dict[str, Optional[object]], inputs: dict[str, list[str]],
                transcript: str, transcript_source: Optional[str], prompt: bool) -> list[dict]:
    """The inputs this prediction actually used, one entry each: what it came from and which features read it."""
    present = lambda m: [n for n in inputs.get(m, []) if feats.get(n) is not None]
    used = []
    if present("audio"):
        used.append({"input": "audio", "from": "the audio file" if given["audio"] else "the video's audio track",
                     "features": present("audio")})
    if present("face"):
        used.append({"input": "face", "from": "the image" if given["image"] and not given["video"] else "the video's frames",
                     "features": present("face")})
    if transcript and (present("text") or prompt):
        source = "the given text" if transcript_source == "given" else "Whisper's transcript of the speech"
        used.append({"input": "text", "from": source, "features": present("text"), "in_prompt": prompt})
    return used


def unused_inputs(given: dict[str, bool], inputs: dict[str, list[str]], text: bool) -> dict[str, str]:
    """What was given that this model does not read at all, with why (shown, never passed to the model)."""
    out = {}
    audio, face = "audio" in inputs, "face" in inputs
    if given["image"] and not face:
        out["image"] = f"{NOT_USED} (it reads no faces)"
    if given["video"]:
        if not audio and not face and not (text and not given["text"]):
            out["video"] = f"{NOT_USED} (it reads no audio and no faces)"
        elif not face:
            out["video frames"] = f"{NOT_USED} (it reads no faces; only the video's sound is used)"
    if given["audio"] and not audio and not (text and not given["text"]):
        out["audio"] = f"{NOT_USED} (it reads no audio)"
    if given["text"] and not text:
        out["text"] = f"{NOT_USED} (it reads no text)"
    return out
