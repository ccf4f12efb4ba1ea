"""One raw clip, image or sentence → emotion, probability per class, and why, with a trained run.

The input becomes a one-sample manifest entry and goes through the SAME extractors as training
(`emotune.features.store.extract_output`), then through the run's model. Nothing here computes a feature.
The result lists exactly the inputs the model used (`used`), what was given but is not read by this
model (`not_used`), and the prediction without each used input (`contributions`).

    from emotune.serve.predict import predict
    predict("runs/ravdess", video="clip.mp4", text="I can't believe it.")
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.data.examples import Examples, words_clue
from emotune.data.sample import Sample
from emotune.errors import EmotuneError
from emotune.serve.duration import check_duration
from emotune.serve.extraction import LongLane, extract_all
from emotune.serve.reading import (describe_model, prompt_shows_transcript, read_inputs, reads_text, unused_inputs,
                                   used_inputs)

INPUT_ID = "input"


@dataclasses.dataclass
class Inputs:
    video: Optional[Path] = None
    audio: Optional[Path] = None
    image: Optional[Path] = None
    text: str = ""

    def given(self) -> list[str]:
        return [m for m in ("video", "audio", "image") if getattr(self, m)] + (["text"] if self.text else [])


class Predictor:
    """A trained run loaded once, for many predictions (the demo and the API hold one per run directory).

    Thread-safe: each in-process extractor runs one sample at a time (their lazily built models and native
    libraries are not all re-entrant), so concurrent requests overlap across extractors and the model.
    Servers call `serve_limits`: media above a duration are refused, and long clips are extracted in a
    separate low-priority process so that they never hold the extractors short clips need.
    """

    def __init__(self, run_dir: str | Path):
        from emotune.config import load_config
        from emotune.experiments.run import load_model

        self.run_dir = Path(run_dir)
        if not (self.run_dir / "config.yaml").is_file():
            raise EmotuneError(f"{self.run_dir}: not a run directory (no config.yaml); make one with `emotune train CONFIG`")
        if not (self.run_dir / "model").is_dir():
            raise EmotuneError(f"{self.run_dir}: the run has no trained model/ (did `emotune train` finish?)")
        self.cfg = load_config(self.run_dir / "config.yaml")
        self.model = load_model(self.cfg, self.run_dir)
        self.label_names = list(self.model.label_names)
        self.inputs = list(self.cfg.model.inputs)
        self.read = read_inputs(self.cfg)  # modality -> the inputs this model reads from it
        self.text = reads_text(self.cfg)
        self.prompt = self.cfg.model.kind == "emotion_lm" and prompt_shows_transcript(self.cfg)
        self.multi = self.cfg.data.target == "multi"
        self.max_duration_s: Optional[float] = None
        self.long_clip_s: Optional[float] = None
        self.lane: Optional[LongLane] = None
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._model_lock = threading.Lock()  # eval-time hooks set model state; generation is not re-entrant

    def serve_limits(self, max_duration_s: Optional[float], long_clip_s: Optional[float],
                     long_pending: Optional[int] = None) -> None:
        """Refuse media longer than `max_duration_s` (TooLong); extract clips longer than `long_clip_s` in
        the long-clip worker, where at most `long_pending` may wait or run (None: no bound)."""
        self.max_duration_s = max_duration_s
        self.long_clip_s = long_clip_s or None
        if self.long_clip_s and self.lane is None:
            self.lane = LongLane(long_pending)

    # -- what the run reads -------------------------------------------------------------------------------
    @property
    def can_explain(self) -> bool:
        # Only an emotion LM trained on reasoning has reasons to give. A label-only LM generates
        # "Emotion: <label>" greedily, which can even name another label than the scored one.
        return self.cfg.model.kind == "emotion_lm" and self.cfg.data.target == "reasoning"

    @property
    def why_no_explanation(self) -> str:
        if self.cfg.model.kind != "emotion_lm":
            return "this run is a baseline classifier: it gives probabilities, not explanations"
        return (f"this emotion-LM run was trained to answer with a label only (data.target={self.cfg.data.target}); "
                "a run trained with data.target=reasoning explains")

    def modalities(self) -> dict[str, list[str]]:
        """modality → the run's input features computed from it (audio: egemaps, whisper; face: fer; ...)."""
        return {m: list(names) for m, names in self.read.items()}

    def reads_text(self) -> bool:
        return self.text

    def describe(self) -> dict:
        return {"run_dir": str(self.run_dir), "name": self.cfg.name, "kind": self.cfg.model.kind,
                "inputs": self.inputs, "modalities": self.modalities(), "reads_text": self.text,
                "reads_face": "face" in self.read, "reads_audio": "audio" in self.read,
                "summary": describe_model(self.read, self.text, self.prompt), "labels": self.label_names,
                "target": self.cfg.data.target, "explains": self.can_explain}

    # -- prediction -----------------------------------------------------------------------------------------
    def predict(self, video=None, audio=None, image=None, text: Optional[str] = None, explain: bool = False,
                face_dir: Optional[str | Path] = None) -> dict:
        inputs = _check_inputs(video, audio, image, text)
        given = {k: bool(getattr(inputs, k)) for k in ("video", "audio", "image", "text")}
        not_used = unused_inputs(given, self.read, self.text)
        duration = self._duration(inputs)
        sample, root = _as_sample(inputs, self.cfg.data.dataset)
        if not self.text:
            sample.text = ""  # given text this model never reads is not passed on (nor transcribed)

        long = self.lane is not None and duration is not None and duration > self.long_clip_s
        if long:
            got = self.lane.run(sample, root, self.read, self.text)
        else:
            got = extract_all(sample, root, self.read, self.text, extract=self._extract)
        feats, missing = got["feats"], got["missing"]
        transcript = got["text"] if self.text else ""
        used = used_inputs(given, feats, self.read, transcript, got["text_source"], self.prompt)
        if not used:
            why = "; ".join([*(f"{n}: {r}" for n, r in missing.items()), *(f"{n}: {r}" for n, r in not_used.items())])
            raise EmotuneError(f"none of this run's inputs could be computed from the "
                               f"{' + '.join(inputs.given())} given ({why}). {describe_model(self.read, self.text, self.prompt)}")
        text_used = any(u["input"] == "text" for u in used)

        ex = self._examples(feats, transcript if text_used else "")
        probs = self._proba(ex)
        result = {
            **self._verdict(probs),
            "used": used,
            "not_used": not_used,
            "modalities": [u["input"] for u in used],
            "inputs": inputs.given(),
            "features": [n for n, v in feats.items() if v is not None],
            "missing": missing,
            "transcript": transcript if text_used else None,
            "transcript_source": got["text_source"] if text_used else None,
            "face": self._save_face(self._face_read(got, inputs), face_dir) if "face" in self.read else None,
            "contributions": self._contributions(ex, probs, used),
            "duration_s": None if duration is None else round(duration, 3),
            "run": {"dir": str(self.run_dir), "name": self.cfg.name, "kind": self.cfg.model.kind},
        }
        if explain:
            result["explanation"] = self._explain(ex, result["label"])
            if result["explanation"] is None:
                result["explanation_note"] = self.why_no_explanation
            else:
                result["explanation_unsupported"] = unsupported_claims(result["explanation"], ex.clues[0] if ex.clues else "")
        return result

    def _duration(self, inputs: Inputs) -> Optional[float]:
        """Seconds of the audio/video given, read from its header (only servers ask: a CLI run has no limit)."""
        if self.max_duration_s is None and self.lane is None:
            return None
        lengths = [check_duration(p, self.max_duration_s, f"the {kind}")
                   for kind, p in (("video", inputs.video), ("audio", inputs.audio)) if p]
        known = [s for s in lengths if s is not None]
        return max(known) if known else None

    def _extract(self, name: str, sample: Sample, root: Path):
        from emotune.features.store import extract_output

        with self._locks_guard:
            lock = self._locks[name]
        with lock:
            return extract_output(name, sample, root)

    def _examples(self, feats: dict[str, Optional[np.ndarray]], text: str) -> Examples:
        from emotune.experiments.run import apply_eval_time

        C = len(self.label_names)
        feats = {name: feats.get(name) for name in self.inputs}  # inputs dropped at test time stay missing
        ex = Examples(ids=[INPUT_ID], label_names=self.label_names, features={k: [v] for k, v in feats.items()},
                      texts=[text or ""], context=[[]], y=np.full(1, -1, dtype=np.int64),
                      y_multi=np.zeros((1, C), np.float32), y_soft=np.zeros((1, C), np.float32), groups=[None],
                      clues=[words_clue(text or "")])
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

    def _contributions(self, ex: Examples, probs: np.ndarray, used: list[dict]) -> dict:
        """For each input used: the prediction with it left out (its features missing; for text, the
        transcript blanked as well, which is how an LM prompt loses it).

        `drop` is how much the predicted class's probability falls without that input: positive means
        the input supported the prediction.
        """
        top = int(np.argmax(probs))
        out = {}
        for u in used:
            feats = {k: ([None] if k in u["features"] else v) for k, v in ex.features.items()}
            texts = [""] if u["input"] == "text" else ex.texts
            clues = [""] if u["input"] == "text" else ex.clues
            without = self._proba(dataclasses.replace(ex, features=feats, texts=texts, clues=clues))
            out[u["input"]] = {"features": u["features"], **({"transcript": True} if u["input"] == "text" else {}),
                               **self._verdict(without), "drop": float(probs[top] - without[top])}
        return out

    @staticmethod
    def _face_read(got: dict, inputs: Inputs) -> Optional[np.ndarray]:
        """The face the extractor read: a video's peak-frame crop; for an image, the image itself (image
        face encoders read the whole image as the face, so no crop comes back)."""
        crop = got["crops"].get("peak")
        if crop is None and inputs.image and not inputs.video:
            import cv2

            crop = cv2.imread(str(inputs.image))
        return crop

    def _save_face(self, crop: Optional[np.ndarray], face_dir) -> Optional[str]:
        """The face the model read (the face extractor's peak crop), written only where the caller asks:
        a crop in a temporary folder nobody removes would be left behind."""
        if crop is None or not face_dir:
            return None
        import cv2

        folder = Path(face_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"face_{os.getpid()}_{next(_face_numbers)}.png"
        if not cv2.imwrite(str(path), crop):
            raise EmotuneError(f"could not write the face crop to {path}")
        return str(path)

    def _explain(self, ex: Examples, label: Optional[str]) -> Optional[str]:
        """The reasoning the model writes, ending in the label it returned (EmotionLM.explain: scored after
        that same reasoning, or the reasoning written for that label)."""
        if not self.can_explain:
            return None
        with self._model_lock:
            return self.model.explain(ex, [label])[0]


def unsupported_claims(explanation: str, clues: str) -> list[dict]:
    """What an explanation asserts (action units, facial movements, tones, quotes) that the model was not
    given: a reasoning model trained with face and voice clues may describe a face it never saw when only
    the words reach it. Shown beside the explanation so a reader knows which parts are invented."""
    from emotune.evaluate.faithfulness import check

    return [{"kind": a.kind, "text": a.text} for a in check(explanation, clues)["unsupported"]]


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
    """label, probabilities (sum 1 for single-label runs), the inputs used and not used, transcript, face
    crop path (with face_dir, for runs that read faces), each used input's contribution and, with
    `explain` on an emotion-LM run, a generated explanation."""
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
