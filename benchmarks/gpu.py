"""The emotion LM on a GPU: correctness on CUDA, then step time, memory and MFU per model shape.

    python benchmarks/gpu.py                  # on a CUDA machine: 135M, 1B and 7B shapes (<= 8 min)
    python benchmarks/gpu.py --reduced        # anywhere, tiny shapes, seconds (the test suite runs this)
    python benchmarks/gpu.py --out DIR        # where gpu.json goes (default: $OUT, else benchmarks/results)

Models are random-initialised LLaMA-family shapes (`random:configs/backbones/<shape>.json`, the real
SmolLM2 tokenizer) fed random RAVDESS-shaped features: the weights do not matter for speed, and real 7B
weights cannot travel. Checks (fp32 unless said): the same tiny model and batch give the same
closed-set scores on CPU and on the device (fp32 within 1e-4; bf16 within 5e-2 in probability); a few
training steps lower the loss; save -> load gives identical scores; generation runs through the same
splice. Measured per shape: training step time and samples/s with projectors only and with LoRA r=16
on q,k,v,o, eager vs SDPA attention, peak device memory, MFU against the bf16 matmul peak measured in
the same run (bf16 on a GPU; on a CPU the precision `auto` picks); closed-set scoring samples/s; generation tokens/s.

On a machine without the built-in backbone's package, copy SmolLM2's tokenizer files next to the shape
configs first (they are looked up there before the built-in backbone):
    cp ~/.cache/emotune/backbones/smollm2-135m-instruct/{tokenizer.json,tokenizer_config.json,chat_template.jinja} configs/backbones/
and run from the source tree (`PYTHONPATH=. python benchmarks/gpu.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from emotune.model.emotion_lm import EmotionLM  # noqa: E402
from emotune.model.lm_config import LMConfig, LoRAConfig  # noqa: E402
from emotune.train.config import TrainConfig  # noqa: E402
from emotune.train.losses import make_loss  # noqa: E402
from train import SHAPES, ravdess_like, step_flops  # noqa: E402

FULL_SHAPES = ("smollm2_135m", "llama_1b", "llama_7b")
REDUCED_SHAPES = ("tiny",)


def backbone(shape: str) -> str:
    return f"random:{ROOT / 'configs' / 'backbones' / f'{shape}.json'}"


def build(shape: str, precision: str, lora: bool, attention: str = "auto", ex=None, device=None) -> EmotionLM:
    """The model of one shape; with `ex`, its projectors standardised on those features; with `device`, moved."""
    cfg = LMConfig(backbone=backbone(shape), dtype=precision, tokens=4, attention=attention,
                   lora=LoRAConfig(enabled=lora, r=16, alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    model = EmotionLM(ravdess_like(1).label_names, list(SHAPES), SHAPES, cfg, TrainConfig(bf16=precision, progress=False), seed=0)
    model.net.loss_fn = make_loss("ce", None, 2.0, "single")
    if ex is not None:
        for name, proj in model.net.projectors.items():
            proj.set_stats(ex.features[name])
    if device is not None:
        model.net.to(device)
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_precision(device: torch.device) -> str:
    """Steps run in bf16 on a GPU; on a CPU in what `auto` picks (fp32 without bf16 matmul units)."""
    from emotune.model.precision import resolve

    return "bf16" if device.type == "cuda" else resolve("auto", "cpu")


def matmul_peak(device: torch.device, seconds: float) -> float:
    """Best GFLOP/s of matmuls in the steps' precision over a few square sizes (the roof of MFU)."""
    best = 0.0
    sizes = (4096, 8192) if device.type == "cuda" else (256, 512)
    dtype = torch.bfloat16 if step_precision(device) == "bf16" else torch.float32
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        sync(device)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / len(sizes):
            a @ b
            reps += 1
        sync(device)
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


# -- correctness ----------------------------------------------------------------------------------

def checks(device: torch.device, shape: str, n: int) -> dict:
    ex = ravdess_like(n)
    out: dict = {}
    for precision, bound in (("fp32", 1e-4), ("bf16", 5e-2)):
        model = build(shape, precision, lora=True, ex=ex)
        with torch.no_grad():  # LoRA B starts at 0: make it matter
            for pname, p in model.net.named_parameters():
                if "lora_B" in pname:
                    p.normal_(0, 0.02)
        model.net.to("cpu")
        cpu = model.predict_proba(ex)
        model.net.to(device)
        dev = model.predict_proba(ex)
        diff = float(np.abs(cpu - dev).max())
        out[f"cpu_vs_device_{precision}_max_abs_prob_diff"] = diff
        out[f"cpu_vs_device_{precision}_ok"] = diff <= bound
    # training lowers the loss; save -> load gives identical scores; generation through the same splice
    model = build(shape, "fp32", lora=True, ex=ex, device=device)
    params = [p for p in model.net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-3)
    model.net.train()
    index = np.arange(min(8, n))
    losses = []
    for step in range(8):
        loss = model.net(model.make_batch(ex, index, torch.Generator().manual_seed(0)))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    out["loss_first_last"] = [round(losses[0], 4), round(losses[-1], 4)]
    out["training_lowers_loss"] = losses[-1] < losses[0]
    model.net.eval()
    before = model.predict_proba(ex)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        again = EmotionLM.load(Path(tmp))
        again.net.to(device)
        out["save_load_identical"] = bool(np.array_equal(before, again.predict_proba(ex)))
    texts = model.generate(ex.subset(np.arange(2)), max_new_tokens=4)
    out["generation_runs"] = len(texts) == 2 and all(isinstance(t, str) for t in texts)
    return out


# -- throughput -----------------------------------------------------------------------------------

def time_training(device, shape, lora, attention, batch_size, steps) -> dict:
    ex = ravdess_like(batch_size * (steps + 1))
    model = build(shape, step_precision(device), lora, attention, ex=ex, device=device)
    params = [p for p in model.net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.net.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, flops = [], []
    for step in range(steps + 1):  # step 0 warms up
        batch = model.make_batch(ex, np.arange(step * batch_size, (step + 1) * batch_size), torch.Generator().manual_seed(step))
        sync(device)
        t0 = time.perf_counter()
        loss = model.net(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if step:
            times.append(time.perf_counter() - t0)
            flops.append(step_flops(model, batch, lora)["flops"])
    sec = float(np.median(times))
    out = {"s_per_step": round(sec, 4), "samples_per_s": round(batch_size / sec, 2),
           # 3 significant digits, not 1 decimal: the reduced mode's tiny shape on a busy CPU runs at < 0.05 GFLOP/s
           "gflop_per_step": float(f"{float(np.median(flops)) / 1e9:.3g}"), "achieved_gflops": float(f"{float(np.median(flops)) / sec / 1e9:.3g}"),
           "sequence": {"shared_prefix": len(batch.prefix), "suffix_padded": int(batch.ids.shape[1])}, "batch_size": batch_size}
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def time_inference(device, shape, n, new_tokens) -> dict:
    ex = ravdess_like(n)
    model = build(shape, step_precision(device), lora=False, ex=ex, device=device)
    model.predict_proba(ex.subset(np.arange(2)))
    sync(device)
    t0 = time.perf_counter()
    model.predict_proba(ex)
    sync(device)
    score = time.perf_counter() - t0
    t0 = time.perf_counter()
    texts = model.generate(ex, max_new_tokens=new_tokens)
    sync(device)
    gen = time.perf_counter() - t0
    tokens = sum(len(model.tokenizer(t, add_special_tokens=False).input_ids) for t in texts)
    return {"scoring_samples_per_s": round(n / score, 2), "generation_tokens_per_s": round(tokens / gen, 1),
            "generated_tokens": tokens}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reduced", action="store_true", help="tiny shapes and few steps (seconds, any machine)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shapes = REDUCED_SHAPES if args.reduced or device.type != "cuda" else FULL_SHAPES
    steps = 2 if args.reduced else args.steps
    batch = 2 if args.reduced else args.batch_size
    t_start = time.time()
    result: dict = {"date": date.today().isoformat(), "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "reduced": shapes == REDUCED_SHAPES, "shapes": {}}
    result["precision"] = step_precision(device)
    result["matmul_peak_gflops"] = round(matmul_peak(device, 0.5 if args.reduced else 3.0), 1)
    result["checks"] = checks(device, shapes[0] if args.reduced else "smollm2_135m", 4)
    for shape in shapes:
        row: dict = {}
        for lora in (False, True):
            for attention in ("eager", "sdpa"):
                name = f"{'lora_r16_qkvo' if lora else 'projectors_only'}_{attention}"
                try:
                    row[name] = time_training(device, shape, lora, attention, batch, steps)
                    row[name]["mfu"] = float(f'{row[name]["achieved_gflops"] / result["matmul_peak_gflops"]:.3g}')  # 3 significant digits: a tiny shape on a busy CPU is < 0.0005
                except torch.OutOfMemoryError as exc:
                    row[name] = {"error": f"out of memory: {str(exc).splitlines()[0][:160]}"}
                print(f"{shape} {name}: {row[name]}", flush=True)
        row["inference"] = time_inference(device, shape, 4 if args.reduced else 64, 4 if args.reduced else 32)
        result["shapes"][shape] = row
    result["wall_seconds"] = round(time.time() - t_start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("gpu_reduced.json" if result["reduced"] else "gpu.json")).write_text(json.dumps(result, indent=1))
    print(table(result))
    return result


def table(r: dict) -> str:
    lines = [f"{r['device']}, torch {r['torch']}, {r['precision']} matmul peak {r['matmul_peak_gflops']} GFLOP/s, checks: "
             + ", ".join(f"{k}={v}" for k, v in r["checks"].items()),
             "| shape | path | s/step | samples/s | MFU | peak GiB |", "|---|---|---|---|---|---|"]
    for shape, row in r["shapes"].items():
        for name, m in row.items():
            if name == "inference":
                continue
            lines.append(f"| {shape} | {name} | {m.get('s_per_step', m.get('error'))} | {m.get('samples_per_s', '')} | "
                         f"{m.get('mfu', '')} | {m.get('peak_memory_gib', '')} |")
        lines.append(f"| {shape} | scoring / generation | — | {row['inference']['scoring_samples_per_s']} samples/s | — | "
                     f"{row['inference']['generation_tokens_per_s']} tokens/s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
