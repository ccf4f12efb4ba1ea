"""Checkpoints that survive a kill at any instant: safetensors + JSON only, written atomically.

Layout under a run's `checkpoints/` folder:

    step-000120/weights.safetensors    trainable weights (+ projector statistics)
    step-000120/optimizer.safetensors  optimizer tensors (AdamW moments, step counts)
    step-000120/rng.safetensors        torch RNG state(s)
    step-000120/state.json             optimizer param groups, scheduler, position in training, history
    step-000120/ema.safetensors        the weights' moving average (only when train.ema is on)
    latest                             name of the newest complete checkpoint

A checkpoint is written into a temporary folder and renamed into place; `latest` is replaced
atomically afterwards, so it never names a half-written folder. Older checkpoints are then removed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import torch

from emotune.errors import EmotuneError
from emotune.io import atomic_replace, atomic_write_json


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_replace(Path(path), lambda tmp: save_file(flat, tmp))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise EmotuneError(f"{path}: weights file not found") from None
    except (SafetensorError, OSError) as exc:
        raise EmotuneError(f"{path}: unreadable weights ({exc})") from None


def _optimizer_split(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """torch optimizer state_dict → (tensors for safetensors, the rest for JSON)."""
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {}
    for flat, value in list(tensors.items()) + list(rest["scalars"].items()):
        idx, key = flat.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def rng_state() -> dict[str, torch.Tensor]:
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda{i}"] = s
    return out


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = [state[k] for k in sorted(state) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(root: Path, step: int, weights: dict[str, torch.Tensor], optimizer_state: dict,
                    scheduler_state: dict, progress: dict, ema: Optional[dict[str, torch.Tensor]] = None) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        opt_tensors, opt_rest = _optimizer_split(optimizer_state)
        save_tensors(weights, tmp / "weights.safetensors")
        save_tensors(opt_tensors, tmp / "optimizer.safetensors")
        save_tensors(rng_state(), tmp / "rng.safetensors")
        if ema is not None:
            save_tensors(ema, tmp / "ema.safetensors")
        atomic_write_json(tmp / "state.json", {"optimizer": opt_rest, "scheduler": scheduler_state, "progress": progress})
        final = root / name
        if final.exists():  # the same step saved before a kill; this copy is as good
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_replace(root / "latest", lambda t: Path(t).write_text(name + "\n"))
    for old in root.iterdir():
        if old.name != name and old.name != "latest":
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    return final


def load_latest(root: Path) -> Optional[dict]:
    """The newest complete checkpoint as {weights, optimizer, scheduler, rng, progress, ema}, or None."""
    root = Path(root)
    pointer = root / "latest"
    if not pointer.exists():
        return None
    folder = root / pointer.read_text().strip()
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EmotuneError(f"{folder}: damaged checkpoint ({exc}); delete {root} to train from scratch") from None
    return {
        "weights": load_tensors(folder / "weights.safetensors"),
        "optimizer": _optimizer_join(load_tensors(folder / "optimizer.safetensors"), state["optimizer"]),
        "scheduler": state["scheduler"],
        "rng": load_tensors(folder / "rng.safetensors"),
        "progress": state["progress"],
        "ema": load_tensors(folder / "ema.safetensors") if (folder / "ema.safetensors").exists() else None,
    }
