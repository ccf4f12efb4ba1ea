"""benchmarks/gpu.py in its reduced mode (tiny random shape, CPU when there is no GPU), so it cannot rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_reduced_mode_runs_every_check(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_benchmark", ROOT / "benchmarks" / "gpu.py")
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    result = gpu.main(["--reduced", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "gpu_reduced.json").read_text())
    assert saved["reduced"] and saved["shapes"].keys() == {"tiny"}
    checks = saved["checks"]
    assert checks["cpu_vs_device_fp32_ok"] and checks["cpu_vs_device_bf16_ok"]
    assert checks["training_lowers_loss"] and checks["save_load_identical"] and checks["generation_runs"]
    row = result["shapes"]["tiny"]
    for name in ("projectors_only_eager", "projectors_only_sdpa", "lora_r16_qkvo_eager", "lora_r16_qkvo_sdpa"):
        assert row[name]["s_per_step"] > 0 and row[name]["mfu"] > 0
    assert row["inference"]["scoring_samples_per_s"] > 0 and row["inference"]["generated_tokens"] > 0
