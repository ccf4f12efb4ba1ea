"""Typed configuration: dataclasses loaded from YAML, with `key=value` overrides.

A recipe is a plain YAML file in `configs/`. Every key must exist in the dataclass schema below and
every value must have the declared type; anything else fails with ONE line that names the key and the
file (or "command line" for an override). An ablation is therefore a config diff, never a code edit.

Each stage owns its section (`emotune/<stage>/config.py`); this module only composes them (the
generic loader is emotune/recipe.py, dataset and cache locations emotune/paths.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from emotune.data.config import DataConfig
from emotune.errors import ConfigError, EmotuneError  # noqa: F401  (callers catch ConfigError from here too)
from emotune.evaluate.config import EvalConfig
from emotune.features.config import FeaturesConfig
from emotune.model.config import ModelConfig
from emotune.recipe import as_plain, load_with_raw
from emotune.train.config import KIND_DEFAULTS, TrainConfig


@dataclasses.dataclass
class Config:
    name: str = "run"
    seed: int = 0
    run_dir: str = "runs/${name}"  # ${name} is replaced by the run name
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    features: FeaturesConfig = dataclasses.field(default_factory=FeaturesConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)

    # Where the config came from; filled by `load_config`, never read from YAML.
    source: str = dataclasses.field(default="", metadata={"internal": True})
    overrides: list[str] = dataclasses.field(default_factory=list, metadata={"internal": True})

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir.replace("${name}", self.name))


def to_dict(cfg: Config) -> dict:
    return as_plain(cfg)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a training/experiment recipe (the `Config` schema)."""
    cfg, raw = load_with_raw(Config, path, overrides)
    # Optimisation settings the recipe leaves unset take the model kind's defaults (train.KIND_DEFAULTS).
    given = raw.get("train") or {}
    for key, value in KIND_DEFAULTS.get(cfg.model.kind, {}).items():
        if key not in given:
            setattr(cfg.train, key, value)
    if cfg.train.refit and (cfg.model.kind != "emotion_lm" or cfg.data.target == "reasoning"):
        raise EmotuneError(f"{path or 'config'}: train.refit retrains the emotion LM on a label target for the epoch "
                           f"count chosen on validation; model.kind {cfg.model.kind} with data.target {cfg.data.target} "
                           f"does not take it (the LR refits with model.baseline.refit)")
    if cfg.train.inner_folds:
        if cfg.model.kind != "emotion_lm" or cfg.data.target not in ("single", "soft"):
            raise EmotuneError(f"{path or 'config'}: train.inner_folds chooses the emotion LM's epoch count on a single or "
                               f"soft label target; model.kind {cfg.model.kind} with data.target {cfg.data.target} does "
                               f"not take it (the LR chooses C by its own inner CV: model.baseline.inner_folds)")
        if cfg.train.refit:
            raise EmotuneError(f"{path or 'config'}: train.inner_folds refits on every training group itself; "
                               f"train.refit (the validation side chooses, then a refit) is the other way: set one")
    if cfg.train.fixed_schedule:
        if cfg.model.kind != "emotion_lm" or cfg.data.target not in ("single", "soft"):
            raise EmotuneError(f"{path or 'config'}: train.fixed_schedule trains the emotion LM on a single or soft label "
                               f"target for train.epochs on training + validation; model.kind {cfg.model.kind} with "
                               f"data.target {cfg.data.target} does not take it")
        if cfg.train.refit or cfg.train.inner_folds:
            raise EmotuneError(f"{path or 'config'}: train.fixed_schedule chooses nothing (train.epochs is the schedule); "
                               f"train.refit and train.inner_folds choose the epoch count first: set one")
        if cfg.eval.split != "test":
            raise EmotuneError(f"{path or 'config'}: train.fixed_schedule trains on the validation samples, so they "
                               f"cannot be the evaluated side (eval.split={cfg.eval.split})")
    for key in ("probe_init", "distill"):
        if (cfg.train.refit or cfg.train.inner_folds or cfg.train.fixed_schedule) and cfg.model.kind == "emotion_lm" and getattr(cfg.model.lm, key) == "mlp":
            raise EmotuneError(f"{path or 'config'}: train.refit / train.inner_folds / train.fixed_schedule train the final model without a validation side, and "
                               f"model.lm.{key}=mlp needs one for the MLP head's early stopping; use {key}=lr "
                               f"or no refit")
    if cfg.train.ema and cfg.model.kind != "emotion_lm":
        raise EmotuneError(f"{path or 'config'}: train.ema averages the emotion LM's trained weights; model.kind "
                           f"{cfg.model.kind} does not take it")
    cfg.source = str(path or "")
    cfg.overrides = list(overrides)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# resolved from {cfg.source or 'defaults'}" + (f" with {' '.join(cfg.overrides)}" if cfg.overrides else "")
    path.write_text(header + "\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
