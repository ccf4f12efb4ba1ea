"""Run inside a private mount namespace with a small tmpfs at ROOT (see test_full_disk.py):

    python -m tests.faults.disk_full_child ROOT

Fills the tmpfs for real with a ballast file, so that a checkpoint write and a feature-cache shard write
run out of space half way, then frees the space and writes again. Prints one JSON object saying what
happened; the tmpfs (and everything on it) vanishes with the namespace.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from emotune.features.base import Output
from emotune.features.cache import FeatureCache, Record
from emotune.train import checkpoint

MB = 1 << 20


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_until(root: Path, left: int) -> Path:
    """A ballast file that leaves about `left` bytes free."""
    ballast = root / "ballast"
    with open(ballast, "ab") as f:
        need = free_bytes(root) - left
        while need > 0:
            n = min(need, MB)
            f.write(b"\0" * n)
            need -= n
    return ballast


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def checkpoints(root: Path) -> dict:
    """A 1 MiB parameter: a checkpoint holds ~1 MiB of weights and ~2 MiB of AdamW moments."""
    ckpt = root / "checkpoints"
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(256 * 1024))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.sum().backward()
    opt.step()
    first = p.detach().clone()
    checkpoint.save_checkpoint(ckpt, 1, {"w": first}, opt.state_dict(), {"last_epoch": 1}, {"step": 1})
    ballast = fill_until(root, left=MB + MB // 2)  # room for the weights, not for the moments
    p.sum().backward()
    opt.step()
    out: dict = {}
    try:
        checkpoint.save_checkpoint(ckpt, 2, {"w": p.detach()}, opt.state_dict(), {"last_epoch": 2}, {"step": 2})
        out["error"] = None
    except Exception as exc:  # safetensors reports ENOSPC as its own error type, not OSError
        out["error"] = f"{type(exc).__name__}: {exc}"
    state = checkpoint.load_latest(ckpt)
    out["after_failure"] = {"step": state["progress"]["step"], "weights_equal": torch.equal(state["weights"]["w"], first),
                            "moments_shape": list(state["optimizer"]["state"][0]["exp_avg"].shape),
                            "listing": sorted(os.listdir(ckpt)), "hidden": hidden_leftovers(ckpt)}
    ballast.unlink()  # the user frees space; the next save goes through and replaces the old one
    checkpoint.save_checkpoint(ckpt, 2, {"w": p.detach()}, opt.state_dict(), {"last_epoch": 2}, {"step": 2})
    state = checkpoint.load_latest(ckpt)
    out["after_space_freed"] = {"step": state["progress"]["step"], "weights_equal": torch.equal(state["weights"]["w"], p.detach()),
                                "listing": sorted(os.listdir(ckpt))}
    return out


def cache(root: Path) -> dict:
    """Shards of 1 MiB: the second one runs out of space half way."""
    fc = FeatureCache(root / "cache")
    rng = np.random.default_rng(0)
    value = lambda: rng.normal(size=256 * 1024).astype(np.float32)
    fc.write_shard("k", [Record("d/a", "fp-a", Output(value()))])
    ballast = fill_until(root, left=MB // 2)
    out: dict = {}
    try:
        fc.write_shard("k", [Record("d/b", "fp-b", Output(value()))])
        out["error"] = None
    except OSError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    index = fc.scan("k")
    out["after_failure"] = {"samples": sorted(e.sample for e in index.entries()), "corrupt": len(index.corrupt),
                            "hidden": hidden_leftovers(fc.folder("k"))}
    ballast.unlink()
    fc.write_shard("k", [Record("d/b", "fp-b", Output(value()))])
    index = fc.scan("k")
    out["after_space_freed"] = {"samples": sorted(e.sample for e in index.entries()), "corrupt": len(index.corrupt)}
    return out


if __name__ == "__main__":
    root = Path(sys.argv[1])
    print(json.dumps({"tmpfs_bytes": free_bytes(root), "checkpoint": checkpoints(root), "cache": cache(root)}))
