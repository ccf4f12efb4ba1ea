"""A typed recipe loader: YAML into dataclasses, `key=value` overrides, one-line errors.

Every key must exist in the dataclass schema and every value must have the declared type (`Literal`
choices, lists, mappings and nested sections included); anything else fails with ONE line naming the
key and the file (or "command line" for an override). A section may refuse out-of-range values in
its `__post_init__` (emotune.errors.check_ranges), and may list keys that `MOVED` elsewhere.
Used by the experiment recipe (emotune/config.py) and the instruction recipe alike.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from emotune.errors import ConfigError


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


def as_plain(obj) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: as_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.metadata.get("internal")}
    if isinstance(obj, list):
        return [as_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: as_plain(v) for k, v in obj.items()}
    return obj


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
    return load_with_raw(schema, path, overrides)[0]


def load_with_raw(schema, path, overrides) -> tuple[Any, dict]:
    raw = read_yaml(Path(path)) if path else {}
    where = str(path) if path else "defaults"
    # Validate the file on its own first so an error in the file names the file.
    build_dataclass(schema, raw, "", where)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(raw, key, value)
        build_dataclass(schema, raw, "", "command line")
    return build_dataclass(schema, raw, "", where), raw
