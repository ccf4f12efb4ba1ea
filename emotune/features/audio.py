"""Hand-crafted acoustic features: openSMILE eGeMAPS functionals and log-mel statistics (no weights)."""

from __future__ import annotations

import numpy as np

from emotune.errors import EmotuneError
from emotune.features.base import Extractor, Output, Source
from emotune.media.audio import SAMPLE_RATE, load_audio, trim_silence, trim_to_speech
from emotune.media.errors import MediaError

# openSMILE needs at least a few analysis frames; shorter input yields NaN functionals.
MIN_SECONDS = 0.1
# What is cut from both ends of a clip before any feature sees it: nothing; audio 40 dB below the clip's
# loudest frame (`trim_silence`); or everything before the first and after the last speech Silero VAD
# finds (`trim_to_speech`).
TRIMS = {"none": None, "silence": trim_silence, "speech": trim_to_speech}


def load_clip(source: Source, trim: str = "none") -> np.ndarray:
    audio = load_audio(source.path, SAMPLE_RATE)
    if TRIMS[trim] is not None:
        audio = TRIMS[trim](audio, SAMPLE_RATE)
    if audio.size < MIN_SECONDS * SAMPLE_RATE:
        raise MediaError(source.path, f"audio shorter than {MIN_SECONDS} s")
    return audio


class AudioExtractor(Extractor):
    """An extractor that reads the clip through `load_clip`, with the `trim` setting (none | silence | speech)."""

    modality = "audio"
    defaults = {"trim": "none"}
    late_settings = frozenset({"trim"})  # added later: untrimmed features keep the cache keys they had

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.settings["trim"] not in TRIMS:
            raise EmotuneError(f"extractor '{self.name}': trim must be one of {', '.join(TRIMS)}, got {self.settings['trim']!r}")

    def clip(self, source: Source) -> np.ndarray:
        return load_clip(source, self.settings["trim"])


class EGeMAPS(AudioExtractor):
    """The 88 eGeMAPSv02 functionals (Eyben et al. 2016): pitch, loudness, spectral balance, voice quality."""

    name = "egemaps"
    version = "1"

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
        values = self._smile.process_signal(self.clip(source), SAMPLE_RATE).to_numpy(dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(values)):
            raise MediaError(source.path, "eGeMAPS gave non-finite values (silent or too short audio)")
        return Output(values)


class LogMel(AudioExtractor):
    """Mean and std over time of the log-mel spectrogram and of its first difference: 4 x n_mels values."""

    name = "logmel"
    version = "1"
    defaults = {**AudioExtractor.defaults, "n_mels": 64, "hop_ms": 10.0, "win_ms": 25.0}

    def shape(self):
        return (4 * self.settings["n_mels"],)

    def compute(self, source: Source) -> Output:
        import librosa

        audio = self.clip(source)
        hop = int(SAMPLE_RATE * self.settings["hop_ms"] / 1000)
        win = int(SAMPLE_RATE * self.settings["win_ms"] / 1000)
        mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=win, hop_length=hop,
                                             n_mels=self.settings["n_mels"], power=2.0)
        logmel = np.log(mel + 1e-6)
        delta = np.diff(logmel, axis=1) if logmel.shape[1] > 1 else np.zeros_like(logmel)
        stats = [logmel.mean(1), logmel.std(1), delta.mean(1), delta.std(1)]
        return Output(np.concatenate(stats).astype(np.float32))
