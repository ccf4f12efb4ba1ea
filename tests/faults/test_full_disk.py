"""A disk that fills up while a checkpoint or a feature-cache shard is being written.

What must hold: the write fails loudly, the previous checkpoint (or the shards already written) stays
whole and loadable, nothing half-written is left behind, and once there is room again the run resumes
to exactly the result of an uninterrupted one.

The disk fills two ways: for real, on a small tmpfs mounted in a private mount namespace (skipped where
the system allows no such mount), and deterministically everywhere, by making the low-level write of a
chosen file stop half way with ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emotune.data.sample import Sample, read_manifest, write_manifest
from emotune.features.base import get_extractor
from emotune.features.cache import FeatureCache
from emotune.features.store import ensure_features, load_features
from emotune.model.emotion_lm import EmotionLM
from emotune.model.lm_config import LMConfig, LoRAConfig
from emotune.train import checkpoint
from emotune.train.config import TrainConfig
from tests.model.tiny import make_tiny_lm, random_examples

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


def enospc(path) -> OSError:
    return OSError(errno.ENOSPC, NO_SPACE, str(path))


def fill_disk_at(monkeypatch, hit) -> list[Path]:
    """From now on, writing a file for which `hit(path)` is true writes half of it and fails with ENOSPC.

    Patches the two writers the checkpoint code uses (safetensors' save_file, Path.write_text for JSON
    and the `latest` pointer). Returns the list of paths that hit the full disk."""
    import safetensors.torch

    hits: list[Path] = []
    real_save, real_write_text = safetensors.torch.save_file, Path.write_text

    def save_file(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata)
        if hit(Path(filename)):
            hits.append(Path(filename))
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])
            raise enospc(filename)

    def write_text(self, data, *args, **kwargs):
        if hit(self):
            hits.append(self)
            real_write_text(self, data[: len(data) // 2], *args, **kwargs)
            raise enospc(self)
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    monkeypatch.setattr(Path, "write_text", write_text)
    return hits


def writing(step: int, file: str):
    """The temp file save_checkpoint writes `file` of checkpoint `step` through (or `latest`'s)."""
    if file == "latest":
        return lambda p: p.name.startswith(".latest.")
    return lambda p: p.parent.name.startswith(f".step-{step:06d}.") and p.name.startswith(f".{file}.")


def _adamw_state(seed: int):
    torch.manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(4, 3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.sum().backward()
    opt.step()
    return p.detach().clone(), opt.state_dict()


@pytest.mark.parametrize("file", ["weights.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json", "latest"])
def test_checkpoint_write_on_a_full_disk_keeps_the_previous_one(tmp_path, monkeypatch, file):
    root = tmp_path / "checkpoints"
    w7, opt7 = _adamw_state(7)
    checkpoint.save_checkpoint(root, 7, {"w": w7}, opt7, {"last_epoch": 7}, {"step": 7})
    w8, opt8 = _adamw_state(8)

    hits = fill_disk_at(monkeypatch, writing(8, file))
    with pytest.raises(OSError, match=NO_SPACE):
        checkpoint.save_checkpoint(root, 8, {"w": w8}, opt8, {"last_epoch": 8}, {"step": 8})
    assert len(hits) == 1
    monkeypatch.undo()

    state = checkpoint.load_latest(root)
    assert state["progress"] == {"step": 7} and state["scheduler"] == {"last_epoch": 7}
    assert torch.equal(state["weights"]["w"], w7)
    assert torch.equal(state["optimizer"]["state"][0]["exp_avg"], opt7["state"][0]["exp_avg"])
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")], "a half-written temp file or folder was left"
    # Only a failure after the new folder was complete (the pointer) may leave it; `latest` still names step 7.
    assert {p.name for p in root.iterdir()} == ({"latest", "step-000007", "step-000008"} if file == "latest"
                                                else {"latest", "step-000007"})

    checkpoint.save_checkpoint(root, 8, {"w": w8}, opt8, {"last_epoch": 8}, {"step": 8})  # space again
    assert checkpoint.load_latest(root)["progress"] == {"step": 8}
    assert {p.name for p in root.iterdir()} == {"latest", "step-000008"}


LABELS = ["neutral", "happy", "sad", "angry"]
SHAPES = {"egemaps": (88,)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def _train(tiny_dir, out: Path) -> tuple[dict, np.ndarray]:
    torch.set_num_threads(1)
    train = random_examples(32, LABELS, SHAPES, seed=0)
    val = random_examples(8, LABELS, SHAPES, seed=1)
    cfg = LMConfig(backbone=str(tiny_dir), dtype="fp32", tokens=2, modality_dropout=0.3, lora=LoRAConfig(r=4, dropout=0.1))
    tc = TrainConfig(epochs=2, batch_size=8, lr=3e-3, patience=0, bf16=False, checkpoint_every=1, progress=False)
    model = EmotionLM(LABELS, list(SHAPES), SHAPES, cfg, tc, seed=3)
    history = model.fit(train, val, out)
    return history, model.predict_proba(val)


def test_training_stopped_by_a_full_disk_resumes_to_the_uninterrupted_result(tiny_dir, tmp_path, monkeypatch):
    whole_history, whole_probs = _train(tiny_dir, tmp_path / "whole")

    run = tmp_path / "run"
    hits = fill_disk_at(monkeypatch, writing(3, "optimizer.safetensors"))  # 4 steps per epoch: mid epoch 1
    with pytest.raises(OSError, match=NO_SPACE):
        _train(tiny_dir, run)
    assert hits
    monkeypatch.undo()
    state = checkpoint.load_latest(run / "checkpoints")
    assert state["progress"]["step"] == 2 and state["progress"]["micro"] == 2

    history, probs = _train(tiny_dir, run)  # space again: the same command resumes from step 2
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h["history"]]
    assert strip(history) == strip(whole_history) and history["steps"] == 8
    np.testing.assert_array_equal(probs, whole_probs)


def _tone(path: Path, seconds: float, freq: float) -> None:
    import soundfile as sf

    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)


def test_feature_run_stopped_by_a_full_disk_keeps_its_shards_and_resumes(tmp_path, monkeypatch):
    import emotune.io as emotune_io

    data = tmp_path / "data"
    data.mkdir()
    samples = []
    for i in range(6):
        _tone(data / f"t{i}.wav", 0.5, 200 + 50 * i)
        samples.append(Sample(id=f"t{i}", dataset="tones", audio=f"t{i}.wav"))
    write_manifest(tmp_path / "m.jsonl", "tones", data, "ravdess", "all", samples)
    m = read_manifest(tmp_path / "m.jsonl")
    ensure_features(m, ["logmel"], tmp_path / "whole", progress=False)
    whole = load_features(m, ["logmel"], tmp_path / "whole")["logmel"]

    shard_writes = []

    class HalfWritten:
        """The file object of a shard being written when the disk fills: half the bytes land, then ENOSPC."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise enospc(self.f.name)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def filling_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if str(path).endswith(".safetensors"):
            shard_writes.append(path)
            if len(shard_writes) == 2:  # the second chunk's shard
                return HalfWritten(f)
        return f

    cache = tmp_path / "cache"
    monkeypatch.setattr(emotune_io, "open", filling_open, raising=False)  # shards are written by emotune.io
    with pytest.raises(OSError, match=NO_SPACE):
        ensure_features(m, ["logmel"], cache, progress=False, flush_every=2)
    monkeypatch.undo()

    key = get_extractor("logmel").key
    assert not [p for p in (cache / key).rglob(".tmp-*")], "the half-written shard was left behind"
    index = FeatureCache(cache).scan(key)
    assert not index.corrupt and sorted(e.sample for e in index.entries()) == ["tones/t0", "tones/t1"]

    s = ensure_features(m, ["logmel"], cache, progress=False, flush_every=2)["logmel"]
    assert s["cached"] == 2 and s["done"] == 4 and s["missing"] == {}
    resumed = load_features(m, ["logmel"], cache)["logmel"]
    assert sorted(resumed) == sorted(whole) and all(np.array_equal(resumed[k], whole[k]) for k in whole)


def _private_tmpfs(mountpoint: Path, size: str) -> list[str] | None:
    """A command prefix that runs a program with a fresh tmpfs at `mountpoint`, visible to it alone
    (a private mount namespace, as an unprivileged user through a user namespace); None where not allowed."""
    unshare = shutil.which("unshare")
    if not unshare or sys.platform != "linux":
        return None
    mount = f'mount -t tmpfs -o size={size} tmpfs "$0" && exec "$@"'
    for ns in (["--mount"], ["--user", "--map-root-user", "--mount"]):
        prefix = [unshare, *ns, "sh", "-c", mount, str(mountpoint)]
        if os.geteuid() != 0 and ns == ["--mount"]:
            continue
        probe = subprocess.run([*prefix, "true"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


@pytest.mark.slow
def test_a_real_full_tmpfs(tmp_path):
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    prefix = _private_tmpfs(mnt, "8m")
    if prefix is None:
        pytest.skip("no private tmpfs mount possible here (needs unshare and user or mount namespaces)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([*prefix, sys.executable, "-m", "tests.faults.disk_full_child", str(mnt)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert 7 << 20 < out["tmpfs_bytes"] <= 8 << 20

    ck = out["checkpoint"]
    assert ck["error"] and NO_SPACE in ck["error"]  # the kernel's ENOSPC, as safetensors reports it
    assert ck["after_failure"] == {"step": 1, "weights_equal": True, "moments_shape": [256 * 1024],
                                   "listing": ["latest", "step-000001"], "hidden": []}
    assert ck["after_space_freed"] == {"step": 2, "weights_equal": True, "listing": ["latest", "step-000002"]}

    c = out["cache"]
    assert c["error"] and NO_SPACE in c["error"]
    assert c["after_failure"] == {"samples": ["d/a"], "corrupt": 0, "hidden": []}
    assert c["after_space_freed"] == {"samples": ["d/a", "d/b"], "corrupt": 0}
