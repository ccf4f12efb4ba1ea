"""Wall time of one cross-validation under each executor: local `--jobs 1`, local `--jobs 2`, Ray (local cluster).

    python benchmarks/executors.py                                  # RAVDESS 6-fold, logistic regression
    python benchmarks/executors.py --config configs/quickstart.yaml data.root=...   # any recipe

Features must be cached (`emotune features CONFIG`): this measures scheduling, not extraction. Every
variant writes a fresh run directory, so nothing is skipped. Writes benchmarks/results/executors_<name>.json
with the wall times, the per-fold training times and what they predict for a cluster of N such machines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(config: str, overrides: list[str], run_dir: Path, flags: list[str]) -> dict:
    cmd = [sys.executable, "-m", "emotune.cli", "cv", config, *overrides, f"run_dir={run_dir}", *flags]
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ))
    wall = time.time() - t0
    summary = json.loads((run_dir / "summary.json").read_text())
    # each fold's process, start to exit (the executor appends "=== exit 0 after S s" to its log)
    fold_s = [float(re.findall(r"=== exit 0 after ([0-9.]+) s", (run_dir / f / "train.log").read_text())[-1])
              for f in summary["folds"]]
    return {"flags": " ".join(flags), "wall_seconds": round(wall, 1), "fold_seconds": fold_s,
            "ua": round(summary["ua"]["mean"], 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/ravdess.yaml")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    variants = {"local --jobs 1": ["--jobs", "1"], "local --jobs 2": ["--jobs", "2"],
                "ray, 2 workers": ["--executor", "ray", "--cpus-per-run", "1"]}
    cores = os.cpu_count() or 1
    result = {"config": args.config, "overrides": args.overrides, "date": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.processor() or platform.machine()}, {cores} cores",
              "load_before": round(os.getloadavg()[0], 2), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in variants.items():
            result["runs"][name] = timed(args.config, args.overrides, Path(tmp) / name.replace(" ", "_"), flags)
            print(name, result["runs"][name], flush=True)
    result["load_after"] = round(os.getloadavg()[0], 2)
    one = result["runs"]["local --jobs 1"]
    folds = len(one["fold_seconds"])
    serial = one["wall_seconds"]
    for r in result["runs"].values():
        r["speedup_vs_jobs1"] = round(serial / r["wall_seconds"], 2)
    # A cluster of N such machines runs `cores` folds at a time per machine (1 core each, as the Ray run did):
    # the folds come in ceil(folds / (N * cores)) waves of one fold's time, plus the fixed start-up
    # (the driver's feature check and Ray's start) measured here as wall time minus the fold waves.
    ray = result["runs"]["ray, 2 workers"]
    per_fold = max(s for s in ray["fold_seconds"] if s is not None)
    waves_here = math.ceil(folds / cores)
    fixed = max(0.0, ray["wall_seconds"] - waves_here * per_fold)
    result["prediction"] = {
        "model": "wall ≈ fixed + ceil(folds / (machines × cores)) × slowest fold process (folds never wait on each other)",
        "fixed_seconds": round(fixed, 1), "slowest_fold_seconds": per_fold,
        "predicted_wall_seconds": {str(n): round(fixed + math.ceil(folds / (n * cores)) * per_fold, 1) for n in (1, 2, 3, 6)}}
    out = ROOT / "benchmarks" / "results" / f"executors_{Path(args.config).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
