"""Classical heads on the cached features: logistic regression (baseline_lr.py) and a small MLP
(baseline_mlp.py), and what they share (this file): options, saving and loading.

They answer the question a researcher asks first: does the LLM add anything over a plain classifier on
the same features and folds? Both read `Examples` (their input vector: head_input.py) and implement
`EmotionModel`.

Targets: single (softmax), multi (one-vs-rest sigmoid) or soft (cross-entropy on vote distributions).
Imbalance (`train.imbalance`): class_weights, balanced_sampler or focal (MLP only: logistic regression
has no focal form; for it a balanced sampler is replaced by its expectation, per-sample weights).

Saved as `baseline.json` (settings, classes, chosen C, history) + `baseline.safetensors` (scaler and
weights): no pickle.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np
from safetensors.numpy import load_file, save_file

from emotune import vocab
from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from emotune.io import atomic_replace, atomic_write_json
from emotune.model.baseline_config import BaselineConfig
from emotune.model.head_input import FeatureInput
from emotune.train.config import TrainConfig, train_defaults

TARGETS = tuple(t for t in vocab.TARGETS if t != "reasoning")  # a head cannot write reasons
CONFIG_FILE = "baseline.json"
WEIGHTS_FILE = "baseline.safetensors"


def _check_options(kind: str, target: str, imbalance: str) -> None:
    if target not in TARGETS:
        raise EmotuneError(f"target must be one of {', '.join(TARGETS)}, got '{target}'")
    if imbalance not in vocab.IMBALANCES:
        raise EmotuneError(f"train.imbalance must be one of {', '.join(vocab.IMBALANCES)}, got '{imbalance}'")
    if kind == "baseline_lr" and imbalance == "focal":
        raise EmotuneError("train.imbalance=focal needs a gradient-trained model (baseline_mlp or emotion_lm); "
                           "for baseline_lr use class_weights or balanced_sampler")


class Baseline:
    kind = ""
    init_hash: Optional[str] = None  # the MLP sets it when its net is built; LR has no initial weights

    def __init__(self, label_names: list[str], inputs: list[str], cfg: BaselineConfig, target: str = "single",
                 imbalance: str = "none", seed: int = 0, focal_gamma: float = 2.0,
                 train: Optional[TrainConfig] = None):
        _check_options(self.kind, target, imbalance)
        if not inputs:
            raise EmotuneError(f"{self.kind} needs at least one feature in model.inputs")
        self.label_names = list(label_names)
        self.inputs = list(inputs)
        self.cfg = cfg
        self.train_cfg = train or train_defaults(self.kind)  # optimisation: the MLP's; unused by LR
        if self.train_cfg.label_smoothing:  # (the check lives with the losses, which import torch)
            from emotune.train.losses import check_smoothing

            check_smoothing(self.train_cfg.label_smoothing, self.kind, imbalance, target)
        self.target = target
        self.imbalance = imbalance
        self.seed = int(seed)
        self.focal_gamma = float(focal_gamma)
        self.encoder = FeatureInput(self.inputs, cfg.pool)
        self.history: dict = {}

    def _training_side(self, train: Examples, val: Examples) -> tuple[Examples, np.ndarray]:
        """Check both sides' labels; keep the training samples that have a target of this kind."""
        self._check_labels(train, "training")
        self._check_labels(val, "validation")
        T, keep = train.targets(self.target), train.has_target(self.target)
        train, T = train.subset(np.flatnonzero(keep)), T[keep]
        if len(train) == 0:
            raise EmotuneError(f"no training sample has a {self.target} target")
        return train, T

    def _check_labels(self, ex: Examples, what: str) -> None:
        if list(ex.label_names) != self.label_names:
            raise EmotuneError(f"{what} examples have labels {ex.label_names}, the model {self.label_names}")

    def state_hash(self) -> Optional[str]:
        return None  # the heads are built inside fit (their input width is known only then)

    def configure_eval(self, cfg) -> None:
        """Nothing to set at evaluation time: a head has no prompts."""

    def generate(self, ex: Examples) -> list[str]:
        raise EmotuneError(f"model kind {self.kind} does not generate text; use --mode score")

    def _meta(self) -> dict:
        return {"kind": self.kind, "label_names": self.label_names, "inputs": self.inputs, "target": self.target,
                "imbalance": self.imbalance, "seed": self.seed, "focal_gamma": self.focal_gamma,
                "config": dataclasses.asdict(self.cfg), "input": self.encoder.to_json(), "history": self.history,
                **({"train": dataclasses.asdict(self.train_cfg)} if self.kind == "baseline_mlp" else {})}

    def _write(self, out_dir: Path, arrays: dict[str, np.ndarray], extra: dict) -> None:
        out_dir = Path(out_dir)
        tensors = {k: np.ascontiguousarray(v) for k, v in {**self.encoder.arrays(), **arrays}.items()}
        # Both files atomic: a kill while saving leaves the previous model or none, never half of one.
        atomic_replace(out_dir / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
        atomic_write_json(out_dir / CONFIG_FILE, {**self._meta(), **extra})

    @classmethod
    def _read(cls, out_dir: Path) -> tuple["Baseline", dict, dict]:
        out_dir = Path(out_dir)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (out_dir / name).exists():
                raise EmotuneError(f"{out_dir}: no {name} (not a saved {cls.kind} model)")
        try:
            meta = json.loads((out_dir / CONFIG_FILE).read_text(encoding="utf-8"))
            arrays = load_file(str(out_dir / WEIGHTS_FILE))
        except (json.JSONDecodeError, OSError, ValueError) as exc:
            raise EmotuneError(f"{out_dir}: unreadable saved model ({exc})") from None
        if meta.get("kind") != cls.kind:
            raise EmotuneError(f"{out_dir / CONFIG_FILE}: holds a {meta.get('kind')} model, not {cls.kind}")
        known = {f.name for f in dataclasses.fields(BaselineConfig)}
        cfg = BaselineConfig(**{k: v for k, v in meta["config"].items() if k in known})
        model = cls(meta["label_names"], meta["inputs"], cfg, meta["target"],
                    meta["imbalance"], meta["seed"], meta.get("focal_gamma", 2.0))
        model.encoder = FeatureInput.from_saved(meta["input"], arrays)
        model.history = meta.get("history", {})
        return model, meta, arrays
