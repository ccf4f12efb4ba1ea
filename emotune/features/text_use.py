"""Whether a run's model reads text, and so whether Whisper ASR is worth running for it.

ASR is the slowest extractor, and on speech its model cannot write it gives nothing. A transcript
reaches a model in two ways only: the emotion LM's prompt shows it (a template with the
`{transcript}` slot), or a text encoder input falls back to it for samples without text (minilm,
hf text models, with `asr_fallback=true`). Training (`experiments.run.feature_names`) and prediction
decide with these functions, so both make transcripts under the same rule.
"""

from __future__ import annotations

import string

ASR = "asr"


def prompt_shows_transcript(cfg) -> bool:
    """True when the run is the emotion LM and one of its training or evaluation templates has {transcript}
    or {clues} (the words said, for a sample without clues of its own)."""
    if cfg.model.kind != "emotion_lm":
        return False
    from emotune.model.prompt import load_templates

    names = list(cfg.model.lm.prompts) + list(cfg.model.lm.eval_prompts)
    return any({"transcript", "clues"} & {f for _, f, _, _ in string.Formatter().parse(t.user) if f}
               for t in load_templates(names))


def text_inputs_use_transcripts(cfg) -> bool:
    """True when a model input is a text encoder that embeds the ASR transcript of samples without text."""
    from emotune.features.base import get_extractor

    return any(get_extractor(name).uses_transcripts for name in cfg.model.inputs)


def model_reads_text(cfg) -> bool:
    """Whether a transcript can change this run's predictions."""
    return text_inputs_use_transcripts(cfg) or prompt_shows_transcript(cfg)


def wants_asr(cfg) -> bool:
    """Whether the run's inputs include ASR transcripts.

    A text encoder input with asr_fallback asks for them itself; for the prompt, ASR is also opt-in
    (listed in features.extractors) and runs only when a template actually shows the transcript."""
    from emotune.features.base import parse_spec

    listed = any(parse_spec(spec)[0] == ASR for spec in cfg.features.extractors)
    return text_inputs_use_transcripts(cfg) or (listed and prompt_shows_transcript(cfg))
