"""Which floating-point type the LM runs in: `auto` picks bf16 only where bf16 matrix products are fast.

bf16 halves memory and, on hardware with bf16 matrix units (CUDA GPUs since Ampere, CPUs with
AVX512-BF16 or AMX), runs matmuls ~2-10x faster than fp32. On a CPU without them PyTorch falls back to
a reference kernel: measured on an AMD EPYC Zen 3 (AVX2 only), a 512x576x1536 bf16 matmul ran at
1.2 GFLOP/s against 109 GFLOP/s in fp32, and one training step of the RAVDESS LM took 88 s instead of
3 s. So `auto` (the default) asks the hardware; a trained model records what it chose (`precision` in
emotion_lm.json).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with native bf16 dot products


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first processor listed in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: no way to tell cheaply, fp32 is never the slow choice
            return False
    return bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS))


@lru_cache(maxsize=None)
def _fast_bf16(device_type: str) -> bool:
    import torch

    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device_type == "cpu" and cpu_has_fast_bf16()


def resolve(precision: str | bool, device_type: str | None = None) -> str:
    """`auto` / `fp32` / `bf16` (or a bool: True = bf16) → the concrete "fp32" or "bf16" for this machine."""
    if precision is True or precision is False:
        return "bf16" if precision else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if device_type is None:
        import torch

        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if _fast_bf16(device_type) else "fp32"
