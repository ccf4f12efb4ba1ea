"""Speech to text with Whisper (faster-whisper), for samples that have audio but no transcript.

Two promises: the same clip always gives the same transcript, and a clip the model cannot write gives
no transcript (a recorded Missing reason), never invented English.

Deterministic: temperature 0 only (no temperature fallback, which samples), a fixed beam, no text
carried over between windows, no VAD. A float32 CTranslate2 decode on the CPU is then bit-for-bit
repeatable.

Language: `language=auto` (default) lets a multilingual model detect it; a language code forces it.
The bundled Whisper tiny.en is English-only: it has no language tokens, so faster-whisper cannot ask
it which language it hears (it reports "en" with probability 1), and asked to transcribe other speech
it writes fluent, invented English. Such output is recognised by how the model decoded it, with two
signals measured on the 16 MER2023 example clips (Chinese) and 167 RAVDESS clips (English, drawn at
random, seeded); all 16 Chinese clips are rejected, all 167 English ones kept:

- it loops: the text's compression ratio is above 2.4 (Whisper's own hallucination threshold), or one
  word comes three times in a row (short loops compress too little to pass 2.4). 6 of the 16 Chinese
  clips looped ("We are here. We are here. ...", ratios 2.67-19.4; "Ninja number number number.");
  no RAVDESS clip did (ratios 0.78-0.87).
- it is unsure of its words: the geometric mean of the word probabilities (the alignment pass of
  `word_timestamps`) is below MIN_WORD_CONFIDENCE. The 10 Chinese clips that did not loop scored
  0.17-0.39; RAVDESS clips 0.53-0.98 (the lowest ones misheard a word, e.g. "Took their setting by the
  door."), so 0.45 leaves a margin on both sides.
The decoder's average log-probability separates far worse (RAVDESS down to -1.04, Chinese clips up to
-0.68) and is not used. A cost: genuine English that repeats a word three times ("no no no") is
dropped too. With a multilingual model these rules are not applied (they are calibrated on tiny.en
only): its own language detection decides, and it transcribes in the language it hears.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from emotune.data.sample import Sample
from emotune.errors import EmotuneError
from emotune.features.audio import AudioExtractor
from emotune.features.base import ASR_LANGUAGE_UNSUPPORTED, ASR_NOT_ENGLISH, Missing, Output, Source
from emotune.features.whisper import WhisperBackend

MAX_COMPRESSION_RATIO = 2.4
MAX_WORD_RUN = 2  # the same word more often in a row is a decoding loop
MIN_WORD_CONFIDENCE = 0.45  # between 0.39 (best non-looping Chinese clip) and 0.53 (worst English clip)


class WhisperASR(AudioExtractor):
    """The transcript (a string). `always=true` also transcribes samples that already carry text."""

    name = "asr"
    version = "2"  # 2: deterministic decoding, language setting, no transcript for speech the model cannot write
    # Greedy decoding: beam search costs ~3x for little gain on short utterances.
    defaults = {**AudioExtractor.defaults, "model": "", "compute_type": "float32", "language": "auto", "beam_size": 1, "always": False}

    def __init__(self, **settings):
        super().__init__(**settings)
        lang = self.settings["language"]
        if lang != "auto" and not re.fullmatch(r"[a-z]{2,3}", lang):
            raise EmotuneError(f"extractor 'asr': language must be 'auto' or a language code such as en or zh, got {lang!r}")
        if self.settings["beam_size"] < 1:
            raise EmotuneError(f"extractor 'asr': beam_size must be at least 1, got {self.settings['beam_size']}")

    def shape(self):
        return ()

    def source(self, sample: Sample, root: Path, transcripts: dict[str, str]) -> Source:
        if sample.text and not self.settings["always"]:
            raise Missing("sample has a transcript")
        return super().source(sample, root, transcripts)

    def compute(self, source: Source) -> Output:
        model = WhisperBackend.get(self.settings["model"], self.settings["compute_type"]).model
        english_only = not model.model.is_multilingual
        lang = self.settings["language"]
        if english_only and lang not in ("auto", "en"):
            raise Missing(ASR_LANGUAGE_UNSUPPORTED)
        segments, _ = model.transcribe(
            self.clip(source), language="en" if english_only else (None if lang == "auto" else lang),
            task="transcribe", temperature=0.0, beam_size=self.settings["beam_size"], best_of=1,
            condition_on_previous_text=False, vad_filter=False, word_timestamps=english_only)
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        if english_only and text and not looks_english(segments):
            raise Missing(ASR_NOT_ENGLISH)
        return Output(text)


def decode_scores(segments) -> dict[str, float]:
    """The signals `looks_english` reads, for one decoded clip."""
    probs = [w.probability for s in segments for w in (s.words or [])]
    confidence = math.exp(sum(math.log(max(p, 1e-6)) for p in probs) / len(probs)) if probs else 0.0
    words = re.findall(r"[a-z0-9']+", " ".join(s.text for s in segments).lower())
    run = longest = 1 if words else 0
    for a, b in zip(words, words[1:]):
        run = run + 1 if a == b else 1
        longest = max(longest, run)
    return {"word_confidence": confidence, "compression_ratio": max((s.compression_ratio for s in segments), default=0.0),
            "word_run": longest}


def looks_english(segments) -> bool:
    """Whether an English-only model's decode is a transcript and not invented English (see the module doc)."""
    scores = decode_scores(segments)
    return (scores["compression_ratio"] <= MAX_COMPRESSION_RATIO and scores["word_run"] <= MAX_WORD_RUN
            and scores["word_confidence"] >= MIN_WORD_CONFIDENCE)
