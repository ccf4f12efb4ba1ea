"""Typed configuration: dataclasses loaded from YAML, with `key=value` overrides.

A recipe is a plain YAML file in `configs/`. Every key must exist in the dataclass schema below and
every value must have the declared type; anything else fails with ONE line that names the key and the
file (or "command line" for an override). An ablation is therefore a config diff, never a code edit.

Each stage owns its section (`emotune/<stage>/config.py`); this module only composes and validates.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from emotune.data.config import DataConfig
from emotune.errors import ConfigError, EmotuneError
from emotune.evaluate.config import EvalConfig
from emotune.features.config import FeaturesConfig
from emotune.model.config import ModelConfig
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


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it (converted where lossless)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r} ({where})")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{key}: must be one of {choices}, got {value!r} ({where})")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r} ({where})")
        (item_tp,) = get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r} ({where})")
        k_tp, v_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, k_tp, key, where): _coerce(v, v_tp, f"{key}.{k}", where) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a section (mapping), got {value!r} ({where})")
        return build_dataclass(tp, value, key, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected float, got {value!r} ({where})")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected int, got {value!r} ({where})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r} ({where})")
        return value
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # `name=2024` on the command line is still a name
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r} ({where})")
        return value
    raise ConfigError(f"{key}: unsupported type {tp} ({where})")


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def build_dataclass(cls, raw: dict, prefix: str, where: str):
    hints = typing.get_type_hints(cls)
    fields = _fields(cls)
    kwargs = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        moved = getattr(cls, "MOVED", {})
        if k not in fields and k in moved:
            raise ConfigError(f"'{key}' is now '{moved[k]}' (one home per setting): set {moved[k]} instead ({where})")
        if k not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown key '{key}' ({where}); known keys here: {known}")
        kwargs[k] = _coerce(v, hints[k], key, where)
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a section's range check: add where the key lives
        raise ConfigError(f"{prefix + '.' if prefix else ''}{exc} ({where})") from None


def _as_dict(obj) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.metadata.get("internal")}
    if isinstance(obj, list):
        return [_as_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _as_dict(v) for k, v in obj.items()}
    return obj


def to_dict(cfg: Config) -> dict:
    return _as_dict(cfg)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value (command line)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML recipe (recipes are files such as configs/ravdess.yaml)") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{line.strip() or ''} malformed YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


def load_recipe(schema, path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()):
    """Load a YAML recipe into the dataclass `schema`, apply `key=value` overrides, validate everything."""
    return _load(schema, path, overrides)[0]


def _load(schema, path, overrides) -> tuple[Any, dict]:
    raw = read_yaml(Path(path)) if path else {}
    where = str(path) if path else "defaults"
    # Validate the file on its own first so an error in the file names the file.
    build_dataclass(schema, raw, "", where)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(raw, key, value)
        build_dataclass(schema, raw, "", "command line")
    return build_dataclass(schema, raw, "", where), raw


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a training/experiment recipe (the `Config` schema)."""
    cfg, raw = _load(Config, path, overrides)
    # Optimisation settings the recipe leaves unset take the model kind's defaults (train.KIND_DEFAULTS).
    given = raw.get("train") or {}
    for key, value in KIND_DEFAULTS.get(cfg.model.kind, {}).items():
        if key not in given:
            setattr(cfg.train, key, value)
    cfg.source = str(path or "")
    cfg.overrides = list(overrides)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# resolved from {cfg.source or 'defaults'}" + (f" with {' '.join(cfg.overrides)}" if cfg.overrides else "")
    path.write_text(header + "\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")


def data_home() -> Path | None:
    """Where dataset roots named relatively in a config are looked up (`EMOTUNE_DATA`)."""
    value = os.environ.get("EMOTUNE_DATA")
    return Path(value) if value else None


def cache_home() -> Path:
    """User cache for converted backbones and features (`EMOTUNE_CACHE`, default ~/.cache/emotune)."""
    value = os.environ.get("EMOTUNE_CACHE")
    return Path(value) if value else Path.home() / ".cache" / "emotune"


def resolve_data_root(root: str) -> Path:
    """A dataset root from a config: absolute, or relative to the working dir, or to `EMOTUNE_DATA`."""
    p = Path(os.path.expanduser(root))
    if p.is_absolute() or p.exists():
        return p
    home = data_home()
    if home is not None and (home / p).exists():
        return home / p
    hint = f" (also looked in EMOTUNE_DATA={home})" if home else " (set EMOTUNE_DATA to the folder that holds your datasets)"
    raise EmotuneError(f"dataset root not found: {root}{hint}")
