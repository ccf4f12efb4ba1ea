"""What an extractor is: a name, a version and settings (together its cache key), and a compute step.

Extractors are named in configs by a *spec*: the name alone (`whisper_seq`) or with settings inline,
`whisper_seq(k=4)`, `hf:facebook/wav2vec2-base(pool=mean)`. Settings live in the spec, not in a separate
table, so the stage that extracts and every stage that loads always agree on which features they mean.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import yaml

from emotune.data.sample import Sample, safe_join
from emotune.errors import EmotuneError
from emotune.media.errors import MediaError

# name -> "module:Class"; imported on first use so `emotune --help` never loads a model library.
REGISTRY = {
    "egemaps": "emotune.features.audio:EGeMAPS",
    "logmel": "emotune.features.audio:LogMel",
    "whisper": "emotune.features.whisper:WhisperPooled",
    "whisper_seq": "emotune.features.whisper:WhisperSegments",
    "whisper_states": "emotune.features.whisper:WhisperStates",  # (T, d); what whisper and whisper_seq derive from
    "asr": "emotune.features.asr:WhisperASR",
    "minilm": "emotune.features.text:MiniLM",
    "fer": "emotune.features.face:FER",
    "fer_image": "emotune.features.face:FERImage",
    "mobilenet_v2": "emotune.features.imagenet:MobileNetV2Features",
    "hf": "emotune.features.hf:HuggingFace",
}


class Missing(Exception):
    """This sample cannot give this feature; `reason` is short and counted in summaries."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Pending(Exception):
    """The input is made earlier in the same run (a transcript the ASR step is about to write)."""


PENDING = "\0pending"  # placeholder transcript while planning a run that also runs ASR

# Why the ASR extractor gives no transcript on purpose (it never writes English it did not hear).
ASR_NOT_ENGLISH = "no transcript: not English speech (the ASR model is English-only)"
ASR_LANGUAGE_UNSUPPORTED = "no transcript: the ASR model is English-only and the language set is not en"

# Missing reasons that describe the sample, not a fault: it carries no input of this kind, or an extractor
# declines it by design. Every other reason (a media file absent, empty, unreadable or too short; an
# unexpected error) is a failure, and `emotune features` exits non-zero on it.
NOT_FAILURES = frozenset({
    "no audio in sample", "no video or image in sample", "no text in sample", "no text and no ASR transcript",
    "empty ASR transcript", "sample has a transcript", "no face found", ASR_NOT_ENGLISH, ASR_LANGUAGE_UNSUPPORTED,
})


def is_failure(reason: str) -> bool:
    return reason not in NOT_FAILURES


_HASHES: dict[tuple, str] = {}


def content_hash(path: Path) -> str:
    """size + BLAKE2b of the bytes, remembered per (path, size, mtime) within a process."""
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _HASHES:
        h = hashlib.blake2b(digest_size=12)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _HASHES[memo] = f"{st.st_size}:{h.hexdigest()}"
    return _HASHES[memo]


@dataclasses.dataclass
class Source:
    """What one extractor reads for one sample, and the fingerprint that says whether a cached result is current."""

    path: Optional[Path] = None  # media file
    text: Optional[str] = None  # text input
    fingerprint: str = ""

    @classmethod
    def of_file(cls, path: Path) -> "Source":
        # The content, not the mtime: a dataset copied, re-mounted or re-extracted keeps its features
        # (RAVDESS hashes in ~0.1 s); an edited file gets new ones.
        try:
            fp = f"file:{content_hash(path)}"
        except OSError:
            fp = "file:absent"  # a file that appears later has a new fingerprint, so it is retried then
        return cls(path=path, fingerprint=fp)

    @classmethod
    def of_text(cls, text: str) -> "Source":
        return cls(text=text, fingerprint="text:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16])


@dataclasses.dataclass
class Output:
    value: np.ndarray | str
    crops: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # name -> BGR image (fer: "peak")


class Extractor:
    """Subclasses set the class attributes and implement `compute_batch` (and `shape` when it depends on settings)."""

    name: ClassVar[str]
    version: ClassVar[str]
    modality: ClassVar[str]  # "audio" | "face" | "text"
    defaults: ClassVar[dict[str, Any]] = {}
    batch_size: ClassVar[int] = 1
    uses_transcripts: ClassVar[bool] = False  # text extractors fall back to the ASR transcript
    # Settings added after the extractor was first released: left out of the cache key while at their
    # default, so the features cached before the setting existed stay valid (other values key new folders).
    late_settings: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **settings: Any):
        unknown = set(settings) - set(self.defaults)
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise EmotuneError(f"extractor '{self.name}': unknown setting(s) {', '.join(sorted(unknown))} (known: {known})")
        self.settings = {**self.defaults, **settings}
        for k, v in self.settings.items():
            d = self.defaults[k]
            if isinstance(d, float) and isinstance(v, int) and not isinstance(v, bool):
                self.settings[k] = v = float(v)  # 10 and 10.0 must give the same cache key
            if d is not None and (type(v) is not type(d)):
                raise EmotuneError(f"extractor '{self.name}': setting {k}={v!r} should be {type(d).__name__}")

    # -- identity -----------------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """Canonical spec: only settings that differ from the defaults, sorted."""
        diff = {k: v for k, v in sorted(self.settings.items()) if v != self.defaults[k]}
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in diff.items())
        return f"{self.name}({inner})" if inner else self.name

    @property
    def key(self) -> str:
        """The cache folder: readable prefix + hash of name, version and ALL settings (defaults included, but
        not `late_settings` at their default)."""
        keyed = {k: v for k, v in self.settings.items() if not (k in self.late_settings and v == self.defaults[k])}
        blob = json.dumps({"name": self.name, "version": self.version, "settings": keyed}, sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
        return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', self.name)}-v{self.version}-{digest}"

    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def info(self) -> dict:
        return {"name": self.name, "spec": self.spec, "modality": self.modality, "shape": tuple(self.shape()),
                "version": self.version, "settings": dict(self.settings), "key": self.key}

    # -- inputs -------------------------------------------------------------------------------------
    def source(self, sample: Sample, root: Path, transcripts: dict[str, str]) -> Source:
        """What to read for this sample; raises Missing when the sample has nothing for this modality."""
        if self.modality == "audio":
            # A video's audio track serves when the sample has no separate audio file.
            rel = sample.audio or sample.video
            if not rel:
                raise Missing("no audio in sample")
        elif self.modality == "face":
            rel = sample.video or sample.image
            if not rel:
                raise Missing("no video or image in sample")
        else:
            raise NotImplementedError
        return file_source(root, rel, sample)

    # -- compute ------------------------------------------------------------------------------------
    def compute_batch(self, sources: list[Source]) -> list[Output | Missing]:
        """One result per source; a media problem becomes Missing(reason) for that source only."""
        out: list[Output | Missing] = []
        for src in sources:
            try:
                out.append(self.compute(src))
            except MediaError as exc:
                out.append(Missing(exc.reason))
            except Missing as exc:
                out.append(exc)
        return out

    def compute(self, source: Source) -> Output:
        raise NotImplementedError

    # -- derived extractors -------------------------------------------------------------------------
    def upstream(self) -> Optional[str]:
        """The spec of an extractor whose cached result this one is computed from (by `derive`), or None.

        `ensure_features` runs the upstream first for the samples that need it and caches its result, so
        every extractor derived from it, in this run or a later one, reuses that work (Whisper: one encoder
        pass per clip). `compute_batch` must still work alone (predict, demo): it computes the upstream."""
        return None

    def derive(self, value: np.ndarray) -> Output:
        raise NotImplementedError


def file_source(root: Path, rel: str, sample: Sample) -> Source:
    try:
        return Source.of_file(safe_join(root, rel, where=f"sample {sample.id}"))
    except EmotuneError:
        raise Missing("media path outside the dataset root") from None


def _fmt(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


_SPEC = re.compile(r"^\s*(?P<name>[^()\s]+)\s*(?:\((?P<args>.*)\))?\s*$")


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """'whisper_seq(k=4)' -> ('whisper_seq', {'k': 4}); 'hf:org/model(pool=mean)' -> ('hf', {'model': 'org/model', 'pool': 'mean'})."""
    m = _SPEC.match(spec or "")
    if not m:
        raise EmotuneError(f"bad extractor spec '{spec}' (expected name or name(key=value,...))")
    name, args = m.group("name"), m.group("args")
    settings: dict[str, Any] = {}
    for part in split_list(args or ""):
        if "=" not in part:
            raise EmotuneError(f"bad extractor spec '{spec}': '{part}' is not key=value")
        k, v = part.split("=", 1)
        try:
            settings[k.strip()] = yaml.safe_load(v) if v.strip() else ""
        except yaml.YAMLError:
            settings[k.strip()] = v.strip()
    if name.startswith("hf:"):
        name, settings = "hf", {"model": name[3:], **settings}
    if name not in REGISTRY:
        raise EmotuneError(f"unknown extractor '{name}' (known: {', '.join(sorted(REGISTRY))}, or hf:<model id or path>)")
    return name, settings


def split_list(text: str) -> list[str]:
    """Split on commas that are not inside parentheses: 'egemaps,whisper_seq(k=4,x=1)' -> 2 items."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        items.append(cur.strip())
    return items


_INSTANCES: dict[str, Extractor] = {}


def get_extractor(spec: str) -> Extractor:
    """One instance per spec per process, so a model loads once however many times it is asked for."""
    if spec not in _INSTANCES:
        name, settings = parse_spec(spec)
        module, cls = REGISTRY[name].split(":")
        _INSTANCES[spec] = getattr(importlib.import_module(module), cls)(**settings)
    return _INSTANCES[spec]


def offline_hub() -> None:
    """Models load from local folders only: never let transformers reach for the hub. Quiet loading, too:
    a weight-loading bar per worker would garble the run's own progress bar."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
