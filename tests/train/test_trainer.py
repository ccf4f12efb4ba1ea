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
from emotune.train.trainer import group_by_length, schedule, update_average
from tests.model.tiny import make_tiny_lm, random_examples
from tests.tolerance import approx_abs, eps, network_chain, rtol, tol

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


def _chain(model: EmotionLM, examples, backward: bool = False) -> int:
    """n (tests/tolerance.py) for the tiny emotion LM on a batch of these examples: forward through the
    projectors, LoRA and the LM to the vocabulary; with `backward` back again, and the weight gradients'
    sum over the batch's tokens."""
    batch = model.make_batch(examples, np.arange(len(examples)), torch.Generator().manual_seed(0))
    seq = len(batch.prefix) + batch.ids.shape[1]
    n = network_chain(model.net, seq=seq, vocab=model.net.base.config.vocab_size, backward=backward)
    return n + len(examples) * seq if backward else n


def test_gradient_accumulation_equals_the_large_batch(tiny_dir, tmp_path):
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    train = random_examples(8, LABELS, SHAPES, seed=0)
    big = _model(tiny_dir, batch_size=8)
    small = _model(tiny_dir, batch_size=4, grad_accum=2)
    seen = []  # what AdamW receives at each step: the accumulated (then clipped) gradients, and lr, eps
    hook = register_optimizer_step_pre_hook(lambda opt, *_: seen.append((
        [p.grad.clone() for g in opt.param_groups for p in g["params"]], opt.param_groups[0]["lr"],
        opt.param_groups[0]["eps"])))
    try:
        big.fit(train, train.subset([]), tmp_path / "big")
        small.fit(train, train.subset([]), tmp_path / "small")
    finally:
        hook.remove()
    assert len(seen) == 2  # one step each
    (g_big, lr, adam_eps), (g_small, _, _) = seen
    # Clipping (max norm 1) would rescale a wrongly scaled sum back to norm 1: it must not act, even on twice this.
    assert torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in g_big])) < 0.5
    # A weight's gradient sums over the batch's tokens values passed forward and back through the LM and
    # projectors; one backward pass of 8 and two of 4 split those sums differently (fp32).
    n = _chain(big, train, backward=True)
    names = [k for k, p in big.net.named_parameters() if p.requires_grad]
    for name, a, b in zip(names, g_big, g_small):
        torch.testing.assert_close(b, a, **tol(torch.float32, n, scale=float(a.abs().max())), msg=lambda m: f"{name}: {m}")
    # The step itself: AdamW's first update is lr * g / (|g| + eps), so a gradient within rounding of 0 may
    # step either way (up to 2 lr apart); each weight's tolerance is its gradient's through that slope,
    # plus the rounding of the update's ~10 float operations and of adding it to the weight.
    wa, wb = big.net.trainable_state(), small.net.trainable_state()
    start = _model(tiny_dir).net.trainable_state()
    assert any(not torch.equal(wa[k], start[k]) for k in wa)  # it trained
    for name, g in zip(names, g_big):
        dg = rtol(torch.float32, n) * (float(g.abs().max()) + g.abs())
        slope = adam_eps / ((g.abs() - dg).clamp(min=0) + adam_eps) ** 2
        allowed = (lr * (torch.clamp(dg * slope, max=2.0) + rtol(torch.float32, 10, bound="worst"))
                   + eps(torch.float32) * start[name].abs())
        worst = float(((wa[name] - wb[name]).abs() - allowed).max())
        assert worst <= 0, f"{name}: a weight differs by {worst:.3g} more than its gradient's tolerance allows"


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
    model = _model(tiny_dir, epochs=6, patience=1, lr=1e-12)  # nothing moves: epoch 2 is no better than 1
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
    checkpoint.save_checkpoint(root, 7, {"w": p.detach()}, opt.state_dict(), {"last_epoch": 1}, {"step": 7},
                               ema={"w": p.detach() * 0.5})
    (root / ".step-000008.half").mkdir()  # a kill during the next save leaves only this
    (root / ".step-000008.half" / "weights.safetensors").write_bytes(b"partial")
    state = checkpoint.load_latest(root)
    assert state["progress"] == {"step": 7} and torch.equal(state["weights"]["w"], p.detach())
    assert torch.equal(state["ema"]["w"], p.detach() * 0.5)  # the weights' average resumes too
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
    process with 8: same losses (reduced across processes), same validation, same predictions, up to
    float32 rounding: the two runs add the same gradients in a different order (tests/tolerance.py)."""
    from tests.train import tiny_run

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
    # Each step's gradient is summed differently (one backward of 8 vs an all-reduce of two of 4). The weights
    # stay equal to rounding, except where Adam normalises a gradient within rounding of 0: a weight the loss
    # hardly depends on. So losses and probabilities differ by about one fp32 forward pass's rounding.
    model = EmotionLM(tiny_run.LABELS, list(tiny_run.SHAPES), tiny_run.SHAPES,
                      LMConfig(backbone=str(tiny_dir), dtype="fp32", tokens=2, lora=LoRAConfig(r=4)), TrainConfig(), seed=3)
    n = _chain(model, random_examples(8, tiny_run.LABELS, tiny_run.SHAPES, seed=0))
    for ea, eb in zip(a["history"]["history"], b["history"]["history"]):
        assert eb["train_loss"] == pytest.approx(ea["train_loss"], abs=approx_abs(np.float32, n, ea["train_loss"]))
        assert eb["val_ua"] == pytest.approx(ea["val_ua"], abs=1e-6)  # a ratio of counts: equal unless a prediction flips
    np.testing.assert_allclose(np.array(b["probs"]), np.array(a["probs"]), **tol(np.float32, n))
    assert (two / "model" / "checkpoints" / "latest").read_text().strip() == "step-000012"


def test_weight_average_warms_up_then_decays():
    avg = {"w": torch.zeros(2)}
    update_average(avg, {"w": torch.ones(2)}, decay=0.9, step=1)  # d = min(0.9, 2/11): the start fades fast
    assert torch.allclose(avg["w"], torch.full((2,), 9 / 11))
    update_average(avg, {"w": torch.zeros(2)}, decay=0.9, step=1000)  # d = 0.9 once warmed up
    assert torch.allclose(avg["w"], torch.full((2,), 0.9 * 9 / 11))


def test_weight_averaging_keeps_the_average_and_leaves_training_alone(tiny_dir, tmp_path):
    """train.ema: the live trajectory is the one without averaging, and the model kept is the moving
    average of that trajectory at the end of the best epoch."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    train, val = random_examples(16, LABELS, SHAPES, seed=0), random_examples(8, LABELS, SHAPES, seed=1)
    runs = {}
    for ema in (0.0, 0.8):
        model = _model(tiny_dir, epochs=3, patience=0, ema=ema)
        names = [k for k, p in model.net.named_parameters() if p.requires_grad]
        start = {k: v.clone() for k, v in model.net.trainable_state().items()}
        steps = []
        hook = register_optimizer_step_post_hook(
            lambda opt, *_: steps.append({k: v.clone() for k, v in model.net.trainable_state().items()}))
        try:
            out = model.fit(train, val, tmp_path / f"ema{ema}")
        finally:
            hook.remove()
        runs[ema] = (out, start, steps, model.net.trainable_state(), names)
    (_, _, plain, _, names), (out, start, live, kept, _) = runs[0.0], runs[0.8]
    assert len(live) == len(plain) == 6  # 3 epochs of 2 steps
    for a, b in zip(plain, live):  # averaging never feeds back into training
        for k in names:
            assert torch.equal(a[k], b[k]), k
    best_step = 2 * out["best_epoch"]
    expected = {k: v.clone() for k, v in start.items()}
    for step, weights in enumerate(live[:best_step], start=1):
        update_average(expected, weights, 0.8, step)
    for k in names:
        torch.testing.assert_close(kept[k], expected[k], rtol=0, atol=0)
        if best_step > 1:
            assert not torch.equal(kept[k], live[best_step - 1][k])  # the average, not the live weights
