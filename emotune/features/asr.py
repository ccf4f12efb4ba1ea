"""Speech to text with Whisper (faster-whisper), for samples that have audio but no transcript."""

from __future__ import annotations

from pathlib import Path

from emotune.data.sample import Sample
from emotune.features.audio import load_clip
from emotune.features.base import Extractor, Missing, Output, Source
from emotune.features.whisper import WhisperBackend


class WhisperASR(Extractor):
    """The transcript (a string). `always=true` also transcribes samples that already carry text."""

    name = "asr"
    version = "1"
    modality = "audio"
    # Greedy decoding: beam search costs ~3x for little gain on short utterances.
    defaults = {"model": "", "compute_type": "float32", "language": "en", "beam_size": 1, "always": False}

    def shape(self):
        return ()

    def source(self, sample: Sample, root: Path, transcripts: dict[str, str]) -> Source:
        if sample.text and not self.settings["always"]:
            raise Missing("sample has a transcript")
        return super().source(sample, root, transcripts)

    def compute(self, source: Source) -> Output:
        model = WhisperBackend.get(self.settings["model"], self.settings["compute_type"]).model
        segments, _ = model.transcribe(load_clip(source), language=self.settings["language"] or None,
                                       beam_size=self.settings["beam_size"], condition_on_previous_text=False)
        return Output(" ".join(s.text.strip() for s in segments).strip())
