"""Hand-crafted acoustic features: openSMILE eGeMAPS functionals and log-mel statistics (no weights)."""

from __future__ import annotations

import numpy as np

from emotune.features.base import Extractor, Output, Source
from emotune.media.audio import SAMPLE_RATE, load_audio
from emotune.media.errors import MediaError

# openSMILE needs at least a few analysis frames; shorter input yields NaN functionals.
MIN_SECONDS = 0.1


def load_clip(source: Source) -> np.ndarray:
    audio = load_audio(source.path, SAMPLE_RATE)
    if audio.size < MIN_SECONDS * SAMPLE_RATE:
        raise MediaError(source.path, f"audio shorter than {MIN_SECONDS} s")
    return audio


class EGeMAPS(Extractor):
    """The 88 eGeMAPSv02 functionals (Eyben et al. 2016): pitch, loudness, spectral balance, voice quality."""

    name = "egemaps"
    version = "1"
    modality = "audio"

    def __init__(self, **settings):
        super().__init__(**settings)
        self._smile = None

    def shape(self):
        return (88,)

    def compute(self, source: Source) -> Output:
        if self._smile is None:
            import opensmile

            self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                          feature_level=opensmile.FeatureLevel.Functionals)
        values = self._smile.process_signal(load_clip(source), SAMPLE_RATE).to_numpy(dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(values)):
            raise MediaError(source.path, "eGeMAPS gave non-finite values (silent or too short audio)")
        return Output(values)


class LogMel(Extractor):
    """Mean and std over time of the log-mel spectrogram and of its first difference: 4 x n_mels values."""

    name = "logmel"
    version = "1"
    modality = "audio"
    defaults = {"n_mels": 64, "hop_ms": 10.0, "win_ms": 25.0}

    def shape(self):
        return (4 * self.settings["n_mels"],)

    def compute(self, source: Source) -> Output:
        import librosa

        audio = load_clip(source)
        hop = int(SAMPLE_RATE * self.settings["hop_ms"] / 1000)
        win = int(SAMPLE_RATE * self.settings["win_ms"] / 1000)
        mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=win, hop_length=hop,
                                             n_mels=self.settings["n_mels"], power=2.0)
        logmel = np.log(mel + 1e-6)
        delta = np.diff(logmel, axis=1) if logmel.shape[1] > 1 else np.zeros_like(logmel)
        stats = [logmel.mean(1), logmel.std(1), delta.mean(1), delta.std(1)]
        return Output(np.concatenate(stats).astype(np.float32))
