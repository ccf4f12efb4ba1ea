"""What a benchmark figure was measured on: CPU model, its matrix-unit flags, what `auto` precision picks."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from emotune.model.precision import BF16_CPU_FLAGS, cpu_flags, resolve

MATRIX_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", *BF16_CPU_FLAGS, "amx_tile", "amx_int8")


def describe() -> dict:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = cpu_flags(info)
    return {"cpu": model, "cpu_count": os.cpu_count(), "matrix_flags": [f for f in MATRIX_FLAGS if f in flags],
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "auto_precision": resolve("auto", "cpu"),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "load_average": round(os.getloadavg()[0], 2)}
