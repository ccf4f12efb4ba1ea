"""One raw clip, image or sentence → emotion, probability per class, and why, with a trained run.

The input becomes a one-sample manifest entry and goes through the SAME extractors as training
(`emotune.features.store.extract_output`), then through the run's model. Nothing here computes a feature.

    from emotune.serve.predict import predict
    predict("runs/ravdess", video="clip.mp4", text="I can't believe it.")
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
import threading
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.data.examples import Examples
from emotune.data.sample import Sample
from emotune.errors import EmotuneError

INPUT_ID = "input"
# What a modality's features are computed from, for messages.
SOURCE_OF = {"audio": "audio or video", "face": "video or image", "text": "text (or English speech)"}


@dataclasses.dataclass
class Inputs:
    video: Optional[Path] = None
    audio: Optional[Path] = None
    image: Optional[Path] = None
    text: str = ""

    def given(self) -> list[str]:
        return [m for m in ("video", "audio", "image") if getattr(self, m)] + (["text"] if self.text else [])


class Predictor:
    """A trained run loaded once, for many predictions (the demo holds one per run directory).

    Thread-safe: each extractor runs one sample at a time (their lazily built models and native
    libraries are not all re-entrant), so concurrent requests overlap across extractors and the model.
    """

    def __init__(self, run_dir: str | Path):
        from emotune.config import load_config
        from emotune.experiments.run import feature_names, load_model

        self.run_dir = Path(run_dir)
        if not (self.run_dir / "config.yaml").is_file():
            raise EmotuneError(f"{self.run_dir}: not a run directory (no config.yaml); make one with `emotune train CONFIG`")
        if not (self.run_dir / "model").is_dir():
            raise EmotuneError(f"{self.run_dir}: the run has no trained model/ (did `emotune train` finish?)")
        self.cfg = load_config(self.run_dir / "config.yaml")
        self.model = load_model(self.cfg, self.run_dir)
        self.label_names = list(self.model.label_names)
        self.inputs = list(self.cfg.model.inputs)
        self.features = feature_names(self.cfg)
        self.multi = self.cfg.data.target == "multi"
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._model_lock = threading.Lock()  # eval-time hooks set model state; generation is not re-entrant

    # -- what the run reads -------------------------------------------------------------------------------
    @property
    def can_explain(self) -> bool:
        return callable(getattr(self.model, "generate", None))

    def modalities(self) -> dict[str, list[str]]:
        """modality → the run's input features computed from it (audio: egemaps, whisper; face: fer; ...)."""
        from emotune.features.base import get_extractor

        out: dict[str, list[str]] = {}
        for name in self.inputs:
            out.setdefault(get_extractor(name).modality, []).append(name)
        return out

    def reads_text(self) -> bool:
        """Whether a transcript changes this run's prediction (a text encoder input, or the LM's prompt)."""
        return "asr" in self.features or self.cfg.model.kind == "emotion_lm" or "text" in self.modalities()

    def describe(self) -> dict:
        return {"run_dir": str(self.run_dir), "name": self.cfg.name, "kind": self.cfg.model.kind,
                "inputs": self.inputs, "modalities": self.modalities(), "labels": self.label_names,
                "target": self.cfg.data.target, "explains": self.can_explain}

    # -- prediction -----------------------------------------------------------------------------------------
    def predict(self, video=None, audio=None, image=None, text: Optional[str] = None, explain: bool = False,
                face_dir: Optional[str | Path] = None) -> dict:
        inputs = _check_inputs(video, audio, image, text)
        sample, root = _as_sample(inputs, self.cfg.data.dataset)
        missing: dict[str, str] = {}
        transcript_source = "given" if inputs.text else None
        if not inputs.text and (sample.audio or sample.video) and self.reads_text():
            try:
                sample.text = str(self._extract("asr", sample, root).value).strip()
                transcript_source = "asr" if sample.text else None
            except EmotuneError as exc:
                missing["asr"] = _reason(exc, "asr")

        feats: dict[str, Optional[np.ndarray]] = {}
        crops: dict[str, np.ndarray] = {}
        for modality, names in self.modalities().items():
            for name in names:
                feats[name] = None
                if not _has(modality, sample):
                    missing[name] = f"no {SOURCE_OF.get(modality, modality)} given"
                    continue
                try:
                    out = self._extract(name, sample, root)
                except EmotuneError as exc:
                    missing[name] = _reason(exc, name)
                    continue
                feats[name] = np.asarray(out.value)
                crops.update(out.crops)
        present = [n for n, v in feats.items() if v is not None]
        if not present:
            why = "; ".join(f"{n}: {missing[n]}" for n in self.inputs)
            raise EmotuneError(f"none of this run's inputs could be computed from the "
                               f"{' + '.join(inputs.given())} given ({why})")

        ex = self._examples(feats, sample.text)
        probs = self._proba(ex)
        result = {
            **self._verdict(probs),
            "modalities": [m for m, names in self.modalities().items() if any(feats[n] is not None for n in names)],
            "inputs": inputs.given(),
            "features": present,
            "missing": missing,
            "transcript": sample.text,
            "transcript_source": transcript_source,
            "face": self._save_face(crops.get("peak"), sample, root, face_dir),
            "contributions": self._contributions(ex, probs),
            "run": {"dir": str(self.run_dir), "name": self.cfg.name, "kind": self.cfg.model.kind},
        }
        if explain:
            result["explanation"] = self._explain(ex)
        return result

    def _extract(self, name: str, sample: Sample, root: Path):
        from emotune.features.store import extract_output

        with self._locks_guard:
            lock = self._locks[name]
        with lock:
            return extract_output(name, sample, root)

    def _examples(self, feats: dict[str, Optional[np.ndarray]], text: str) -> Examples:
        from emotune.experiments.run import apply_eval_time

        C = len(self.label_names)
        ex = Examples(ids=[INPUT_ID], label_names=self.label_names, features={k: [v] for k, v in feats.items()},
                      texts=[text or ""], context=[[]], y=np.full(1, -1, dtype=np.int64),
                      y_multi=np.zeros((1, C), np.float32), y_soft=np.zeros((1, C), np.float32), groups=[None])
        with self._model_lock:
            return apply_eval_time(self.cfg, self.model, ex)  # the run's own test-time settings (dropped inputs...)

    def _proba(self, ex: Examples) -> np.ndarray:
        with self._model_lock:
            probs = np.asarray(self.model.predict_proba(ex), dtype=np.float64)[0]
        if not self.multi:
            probs = probs / probs.sum()  # float32 rows drift from 1 by ~1e-7; JSON readers check the sum
        return probs

    def _verdict(self, probs: np.ndarray) -> dict:
        out = {"label": self.label_names[int(np.argmax(probs))],
               "probabilities": {n: float(p) for n, p in zip(self.label_names, probs)}}
        if self.multi:
            out["labels"] = [n for n, p in zip(self.label_names, probs) if p >= 0.5]
        return out

    def _contributions(self, ex: Examples, probs: np.ndarray) -> dict:
        """For each modality present: the prediction with its features set to missing (its text blanked too).

        `drop` is how much the predicted class's probability falls without that modality: positive means
        the modality supported the prediction.
        """
        top = int(np.argmax(probs))
        out = {}
        for modality, names in self.modalities().items():
            if not any(ex.features[n][0] is not None for n in names):
                continue
            feats = {k: ([None] if k in names else v) for k, v in ex.features.items()}
            texts = [""] if modality == "text" else ex.texts
            without = self._proba(dataclasses.replace(ex, features=feats, texts=texts))
            out[modality] = {"features": names, **self._verdict(without), "drop": float(probs[top] - without[top])}
        return out

    def _save_face(self, crop: Optional[np.ndarray], sample: Sample, root: Path, face_dir) -> Optional[str]:
        """The face shown with the prediction: the face extractor's peak crop when the run reads faces;
        otherwise the largest face in the middle frame (display only: such a run never sees it)."""
        if crop is None and (sample.video or sample.image):
            crop = _display_face(root / (sample.video or sample.image))
        if crop is None:
            return None
        import cv2

        folder = Path(face_dir) if face_dir else Path(tempfile.mkdtemp(prefix="emotune_face_"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"face_{os.getpid()}_{next(_face_numbers)}.png"
        if not cv2.imwrite(str(path), crop):
            raise EmotuneError(f"could not write the face crop to {path}")
        return str(path)

    def _explain(self, ex: Examples) -> Optional[str]:
        if not self.can_explain:
            return None
        with self._model_lock:
            return str(self.model.generate(ex)[0]).strip()


_face_numbers = itertools.count(1)
_predictors: dict[Path, Predictor] = {}
_predictors_lock = threading.Lock()


def load_predictor(run_dir: str | Path) -> Predictor:
    """One Predictor per run directory per process (loading a model takes seconds)."""
    key = Path(run_dir).resolve()
    with _predictors_lock:
        if key not in _predictors:
            _predictors[key] = Predictor(run_dir)
        return _predictors[key]


def predict(run_dir: str | Path, video=None, audio=None, image=None, text: Optional[str] = None,
            explain: bool = False, face_dir: Optional[str | Path] = None) -> dict:
    """label, probabilities (sum 1 for single-label runs), modalities used, transcript, face crop path,
    each modality's contribution and, with `explain` on an emotion-LM run, a generated explanation."""
    return load_predictor(run_dir).predict(video, audio, image, text, explain, face_dir)


# -- the input as a one-sample manifest entry -----------------------------------------------------------

def _check_inputs(video, audio, image, text) -> Inputs:
    inputs = Inputs(text=(text or "").strip())
    for field, value in (("video", video), ("audio", audio), ("image", image)):
        if value is None or str(value) == "":
            continue
        path = Path(value)
        if not path.is_file():
            raise EmotuneError(f"{field} {value}: file not found")
        setattr(inputs, field, path.resolve())
    if not inputs.given():
        raise EmotuneError("nothing to predict from: give a video, an audio file, an image or a text")
    return inputs


def _as_sample(inputs: Inputs, dataset: str) -> tuple[Sample, Path]:
    """Media paths relative to their common folder (a manifest's paths are relative to its root)."""
    files = [p for p in (inputs.video, inputs.audio, inputs.image) if p]
    root = Path(os.path.commonpath([str(p.parent) for p in files])) if files else Path.cwd()
    rel = lambda p: os.path.relpath(p, root) if p else None
    # No `audio` for a video: the audio extractors read a video's own track (as for RAVDESS AV clips).
    sample = Sample(id=INPUT_ID, dataset=dataset, text=inputs.text, audio=rel(inputs.audio), video=rel(inputs.video),
                    image=rel(inputs.image))
    return sample, root


def _has(modality: str, sample: Sample) -> bool:
    if modality == "audio":
        return bool(sample.audio or sample.video)
    if modality == "face":
        return bool(sample.video or sample.image)
    if modality == "text":
        return bool(sample.text)
    return True


def _reason(exc: EmotuneError, name: str) -> str:
    """extract_output says '<name>: <file>: <reason>'; keep '<file>: <reason>'."""
    text = str(exc)
    return text[len(name) + 2:] if text.startswith(name + ": ") else text


def _display_face(path: Path) -> Optional[np.ndarray]:
    from emotune.media.errors import MediaError
    from emotune.media.faces import largest_face
    from emotune.media.video import sample_frames

    try:
        frames = sample_frames(path, count=5)
    except MediaError:
        return None
    for _, frame in sorted(frames, key=lambda tf: abs(tf[0] - frames[len(frames) // 2][0])):
        face = largest_face(frame)
        if face is not None:
            return face
    return None
