"""A run is its config: hashes of the resolved config and of the data, kept in the run directory.

`emotune train / cv / ablate` write `identity.json` into a run directory when they first claim it, and
every later command on that directory compares: the same config and data continue (or skip a finished
run); anything else stops with one line naming the differing keys, so a result can never silently
belong to settings other than the ones recorded beside it.

Keys that cannot change a result (where the run is written, progress bars, worker counts, the cache
location) are left out of the hash, so `train.progress=false` on a rerun is not a different run. Settings of
the model kind a run does not use (the emotion LM's under a head, the heads' under the LM) are recorded but
not compared, so an LR folder stays the LR's when only `model.lm.*` changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from emotune.errors import EmotuneError
from emotune.io import atomic_write_json

FILE = "identity.json"
NOT_RESULT_KEYS = frozenset({"name", "run_dir", "train.progress", "train.checkpoint_every", "features.workers",
                             "features.cache_dir", "features.flush_every"})


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}} → {"train.lr": 1e-3}; lists and scalars are leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def result_keys(cfg, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved config as flat keys, without the ones that cannot change a result."""
    from emotune.config import to_dict

    return {k: v for k, v in flatten(to_dict(cfg)).items() if k not in NOT_RESULT_KEYS and k not in drop}


def make_identity(cfg, fold_json: Optional[str] = None, drop: tuple[str, ...] = ()) -> dict:
    """config + data identity of a run (fold given) or of a CV/grid folder (no fold: the manifest only)."""
    keys = result_keys(cfg, drop)
    manifest = Path(cfg.data.manifest_path())
    data = {"manifest": file_digest(manifest) if manifest.exists() else None,
            "fold": digest(json.loads(fold_json)) if fold_json else None}
    if cfg.data.augment:  # only when set: every run made before the key keeps its data hash
        augment = Path(cfg.data.augment)
        data["augment"] = file_digest(augment) if augment.exists() else None
    return {"config_hash": digest(keys), "data_hash": digest(data), "data": data, "config": keys}


# Keys added to the schema after runs were made, each with a test of "this config does what runs made
# before the key existed did": a folder whose identity lacks the key is then the same run. A key whose
# default changed a result is not neutral at that default (model.baseline.refit changed the LR's fit; it
# is neutral when off, or when the model is not the LR, which never reads it).
LATER_KEYS = {
    "data.fold_file": lambda keys: keys.get("data.fold_file") is None,
    "data.max_val": lambda keys: keys.get("data.max_val") == 0,
    "model.baseline.refit": lambda keys: keys.get("model.kind") != "baseline_lr" or not keys.get("model.baseline.refit"),
    "model.lm.reasoning_position": lambda keys: keys.get("model.lm.reasoning_position") == "before_label",
    "model.lm.input_layout": lambda keys: keys.get("model.lm.input_layout") == "lines",
    "model.lm.feature_noise": lambda keys: keys.get("model.lm.feature_noise") == 0,
    "model.lm.mixup": lambda keys: keys.get("model.lm.mixup") == 0,
    "model.baseline.seeds": lambda keys: keys.get("model.baseline.seeds") == 1,
    "model.lm.projector_rank": lambda keys: keys.get("model.lm.projector") != "lowrank",
    "data.split_seed": lambda keys: keys.get("data.split_seed") is None,
    "data.augment": lambda keys: keys.get("data.augment") is None,
    "train.label_smoothing": lambda keys: keys.get("train.label_smoothing") == 0,
    "train.refit": lambda keys: not keys.get("train.refit"),
    "train.inner_folds": lambda keys: not keys.get("train.inner_folds"),
    "train.ema": lambda keys: not keys.get("train.ema"),
    "model.lm.max_text_tokens": lambda keys: not keys.get("model.lm.max_text_tokens"),
    "model.lm.probe_freeze": lambda keys: not keys.get("model.lm.probe_freeze"),
}


# The config section a model kind never reads. A head ignores the emotion LM's settings; the LM ignores the
# heads' (the heads it fits itself for model.lm.probe_init and model.lm.distill take the heads' defaults).
UNREAD = {"baseline_lr": "model.lm.", "baseline_mlp": "model.lm.", "emotion_lm": "model.baseline."}


def read_keys(keys: dict[str, Any]) -> dict[str, Any]:
    """The flat config keys the run's model kind can read."""
    prefix = UNREAD.get(keys.get("model.kind"))
    return {k: v for k, v in keys.items() if not (prefix and k.startswith(prefix))}


def _same_read_keys(identity: dict, old: dict) -> bool:
    """Do the two configs agree on every key the model reads (later keys that keep the old behaviour aside)?"""
    older = old.get("config")
    if older is None or identity["config"].get("model.kind") != older.get("model.kind"):
        return False
    return digest(read_keys(_without_later(identity, old))) == digest(read_keys(older))


def _without_later(identity: dict, old: dict) -> dict:
    """`identity`'s config keys without the later keys that `old` lacks and that keep the old behaviour."""
    keys = identity["config"]
    neutral = {k for k, holds in LATER_KEYS.items() if k in keys and k not in old.get("config", {}) and holds(keys)}
    return {k: v for k, v in keys.items() if k not in neutral}


def describe_difference(old: dict, new: dict) -> str:
    """'train.epochs 10 → 5, data: the manifest changed' — what makes two identities differ."""
    a, b = old.get("config", {}), new.get("config", {})
    if a.get("model.kind") == b.get("model.kind"):  # keys the model never reads are no difference
        a, b = read_keys(a), read_keys(b)
    parts = [f"{k} {a.get(k, '(unset)')!r} → {b.get(k, '(unset)')!r}" for k in sorted(set(a) | set(b))
             if a.get(k) != b.get(k)]
    da, db = old.get("data", {}), new.get("data", {})
    for key, what in (("manifest", "the manifest"), ("fold", "the fold"), ("augment", "the augmentation manifest")):
        if da.get(key) != db.get(key):
            parts.append(f"{what} changed")
    return ", ".join(parts) or "config hash differs"


def check_or_claim(run_dir: Path, identity: dict, write: bool = True) -> bool:
    """Stop unless `run_dir` is new or was made with the same config and data.

    Returns True when the folder was already claimed by this identity, False when it is new (and then
    claims it when `write`). A folder made before identities existed is compared on its config.yaml.
    """
    run_dir = Path(run_dir)
    path = run_dir / FILE
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EmotuneError(f"{path}: unreadable ({exc}); delete {run_dir} to start over") from None
    elif (run_dir / "config.yaml").exists():
        old = _legacy_identity(run_dir, identity)
    else:
        if write:
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, identity)
        return False
    same_config = (old.get("config_hash") in (identity["config_hash"], digest(_without_later(identity, old)))
                   or _same_read_keys(identity, old))
    same_data = old.get("data_hash") in (None, identity["data_hash"])
    if not (same_config and same_data):
        raise EmotuneError(
            f"{run_dir} was made with a different config: {describe_difference(old, identity)}. "
            f"To start a new run, give it another folder (run_dir=... or name=...), or delete {run_dir}")
    if not path.exists() and write:  # an older run dir that matches: record its identity from now on
        atomic_write_json(path, identity)
    return True


def recorded_hash(run_dir: Path, identity: dict) -> str:
    """The config + data hash the folder was claimed under (`identity`'s if it records none): a rerun that
    `check_or_claim` accepts as the same run resumes the checkpoints written under it."""
    path = Path(run_dir) / FILE
    recorded = json.loads(path.read_text(encoding="utf-8")) if path.exists() else identity
    return recorded["config_hash"] + (recorded.get("data_hash") or identity["data_hash"])


def _legacy_identity(run_dir: Path, identity: dict) -> dict:
    from emotune.config import load_config

    try:
        cfg = load_config(run_dir / "config.yaml")
    except EmotuneError as exc:
        raise EmotuneError(f"{run_dir}: its config.yaml no longer loads ({exc}); "
                           f"start a new run in another folder or delete {run_dir}") from None
    # Compared on the new identity's keys: a CV/grid folder leaves some out (data.fold).
    keys = {k: v for k, v in result_keys(cfg).items() if k in identity["config"]}
    return {"config_hash": digest(keys), "data_hash": None, "config": keys}
