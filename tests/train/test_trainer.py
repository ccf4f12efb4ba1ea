"""The accelerate trainer: exact resume after SIGKILL, accumulation, schedule, early stopping, checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from emotune.model.emotion_lm import EmotionLM
from emotune.model.lm_config import LMConfig, LoRAConfig
from emotune.train import checkpoint
from emotune.train.config import TrainConfig
from emotune.train.trainer import group_by_length, schedule
from tests.model.tiny import make_tiny_lm, random_examples

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
SHAPES = {"egemaps": (88,)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def _run(tiny_dir, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.train.tiny_run", str(tiny_dir), str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.faults
def test_killed_run_resumes_to_the_same_result(tiny_dir, tmp_path):
    whole = _run(tiny_dir, tmp_path / "whole")
    killed_dir = tmp_path / "killed"
    victim = _run(tiny_dir, killed_dir)
    latest = killed_dir / "model" / "checkpoints" / "latest"
    deadline = time.time() + 120
    # Kill once a mid-training checkpoint (step >= 3 of 18) exists.
    while time.time() < deadline and victim.poll() is None:
        if latest.exists() and int(latest.read_text().strip().split("-")[1]) >= 3:
            victim.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert victim.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed_dir / "result.json").exists()
    resumed = _run(tiny_dir, killed_dir)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-2000:]
    assert b"resuming from" in resumed.stderr.read()
    assert whole.wait(timeout=300) == 0, whole.stderr.read().decode()[-2000:]
    a = json.loads((tmp_path / "whole" / "result.json").read_text())
    b = json.loads((killed_dir / "result.json").read_text())
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h["history"]]
    assert strip(a["history"]) == strip(b["history"])
    np.testing.assert_array_equal(np.array(a["probs"]), np.array(b["probs"]))
    assert a["history"]["steps"] == 18  # 3 epochs x ceil(96 / 8 / 2)


def _model(tiny_dir, **train):
    cfg = LMConfig(backbone=str(tiny_dir), dtype="fp32", tokens=2, lora=LoRAConfig(r=4, dropout=0.0))
    tc = TrainConfig(**{"epochs": 1, "batch_size": 8, "lr": 1e-2, "bf16": False, "progress": False, "warmup": 0.0, **train})
    return EmotionLM(LABELS, list(SHAPES), SHAPES, cfg, tc, seed=0)


def test_gradient_accumulation_equals_the_large_batch(tiny_dir, tmp_path):
    train = random_examples(8, LABELS, SHAPES, seed=0)
    big = _model(tiny_dir, batch_size=8)
    small = _model(tiny_dir, batch_size=4, grad_accum=2)
    big.fit(train, train.subset([]), tmp_path / "big")
    small.fit(train, train.subset([]), tmp_path / "small")
    a, b = big.net.trainable_state(), small.net.trainable_state()
    start = _model(tiny_dir).net.trainable_state()
    assert any(not torch.equal(a[k], start[k]) for k in a)  # it trained
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_length_grouping_is_a_seeded_permutation_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 200, size=1003)
    order = rng.permutation(1003)
    grouped = group_by_length(order, lengths, 16, torch.Generator().manual_seed(5))
    assert sorted(grouped.tolist()) == list(range(1003))  # every sample once
    again = group_by_length(order, lengths, 16, torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(grouped, again)  # a resumed epoch rebuilds the same batches
    padded = lambda o: sum(len(b) * lengths[b].max() for b in np.split(o, range(16, len(o), 16)))
    assert padded(grouped) < 0.75 * padded(order)  # tokens computed incl. padding
    # Batches are not run from short to long: their mean lengths are not sorted.
    means = [lengths[b].mean() for b in np.split(grouped, range(16, len(grouped), 16))]
    assert means != sorted(means) and means != sorted(means, reverse=True)


def test_warmup_then_cosine_to_zero():
    f = schedule(warmup_steps=4, total_steps=20)
    assert [round(f(s), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0) and f(12) == pytest.approx(0.5) and f(20) == pytest.approx(0.0)
    assert all(f(s) >= f(s + 1) for s in range(4, 20))


def test_early_stopping_keeps_the_best_epoch(tiny_dir, tmp_path):
    train, val = random_examples(16, LABELS, SHAPES, seed=0), random_examples(16, LABELS, SHAPES, seed=1)
    model = _model(tiny_dir, epochs=6, patience=1, lr=0.0)  # nothing changes: epoch 2 is no better than 1
    out = model.fit(train, val, tmp_path / "run")
    assert out["stopped_early"] and len(out["history"]) == 2 and out["best_epoch"] == 1
    assert (tmp_path / "run" / "best.safetensors").exists()


@pytest.mark.parametrize("imbalance", ["class_weights", "balanced_sampler", "focal"])
def test_imbalance_options_train(tiny_dir, tmp_path, imbalance):
    train, val = random_examples(24, LABELS, SHAPES, seed=0), random_examples(8, LABELS, SHAPES, seed=1)
    out = _model(tiny_dir, imbalance=imbalance).fit(train, val, tmp_path / imbalance)
    assert np.isfinite(out["history"][0]["train_loss"]) and "val_ua" in out["history"][0]


@pytest.mark.faults
def test_checkpoint_roundtrip_and_half_written_folders_are_ignored(tmp_path):
    p = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.sum().backward()
    opt.step()
    root = tmp_path / "ckpt"
    checkpoint.save_checkpoint(root, 7, {"w": p.detach()}, opt.state_dict(), {"last_epoch": 1}, {"step": 7})
    (root / ".step-000008.half").mkdir()  # a kill during the next save leaves only this
    (root / ".step-000008.half" / "weights.safetensors").write_bytes(b"partial")
    state = checkpoint.load_latest(root)
    assert state["progress"] == {"step": 7} and torch.equal(state["weights"]["w"], p.detach())
    fresh = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone())], lr=0.1)
    fresh.load_state_dict(state["optimizer"])
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(fresh.state_dict()["state"][0][key], opt.state_dict()["state"][0][key])
    assert checkpoint.load_latest(tmp_path / "none") is None


@pytest.mark.slow
def test_two_processes_share_each_batch(tiny_dir, tmp_path):
    """The same trainer under torch.distributed (gloo on CPU): each process takes half of every
    micro-batch, so an epoch has half the optimizer steps; only the main process writes checkpoints."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "tests.train.tiny_run", str(tiny_dir), str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["history"]["steps"] == 9  # 3 epochs x ceil(96 / (8 x 2) / 2)
    assert (tmp_path / "model" / "checkpoints" / "latest").read_text().strip() == "step-000009"


def _launch(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-3000:]


@pytest.mark.slow
def test_accelerate_launch_two_processes_equals_one(tiny_dir, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo) and 4 samples each gives the same training as one
    process with 8: same losses (reduced across processes), same validation, same predictions. Tolerance
    1e-4: the two runs add the same gradients in a different order (float32 rounding)."""
    one, two = tmp_path / "one", tmp_path / "two"
    _launch([sys.executable, "-m", "tests.train.tiny_run", str(tiny_dir), str(one), "--exact", "8"], ROOT)
    accelerate = Path(sys.executable).with_name("accelerate")
    # --multi_gpu is accelerate's name for its torchrun-based multi-process launcher; on a machine
    # without GPUs the processes run on CPU with gloo.
    _launch([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
             "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
             "-m", "tests.train.tiny_run", str(tiny_dir), str(two), "--exact", "4"], ROOT)
    a, b = (json.loads((d / "result.json").read_text()) for d in (one, two))
    assert a["history"]["steps"] == b["history"]["steps"] == 12  # 2 epochs x 96 / 8 per micro-batch / 2 accumulated
    for ea, eb in zip(a["history"]["history"], b["history"]["history"]):
        assert eb["train_loss"] == pytest.approx(ea["train_loss"], abs=1e-4)
        assert eb["val_ua"] == pytest.approx(ea["val_ua"], abs=1e-6)
    np.testing.assert_allclose(np.array(b["probs"]), np.array(a["probs"]), atol=1e-4)
    assert (two / "model" / "checkpoints" / "latest").read_text().strip() == "step-000012"
