"""Wall time of a cross-validation, with the feature cache cold (extraction included) and warm.

    python benchmarks/cv.py                                   # RAVDESS 6-fold, logistic regression
    python benchmarks/cv.py --config configs/ravdess_lm.yaml  # the emotion LM (long)
    python benchmarks/cv.py --warm-only                       # skip the cold run
    python benchmarks/cv.py --cold-cache ~/.cache/emotune     # on a fresh machine: the cold run fills the real cache

Writes benchmarks/results/cv_<name>.json. The cold run uses an empty temporary cache, so it measures what a
user pays the first time; the warm run reuses the default cache (run `emotune features` first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_cv(config: str, overrides: list[str], jobs: int, env: dict) -> float:
    t0 = time.time()
    cmd = [sys.executable, "-m", "emotune.cli", "cv", config, *overrides, "--jobs", str(jobs)]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/ravdess.yaml")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--warm-only", action="store_true")
    ap.add_argument("--cold-cache", type=Path,
                    help="an empty (or absent) folder to use as the cold cache and keep; default: a temporary one")
    ap.add_argument("--run-dir", type=Path, help="keep the warm run here (for its report); default: a temporary folder")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    name = Path(args.config).stem
    result = {"config": args.config, "overrides": args.overrides, "jobs": args.jobs,
              "date": time.strftime("%Y-%m-%d"), "load_average_before": round(os.getloadavg()[0], 2),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not args.warm_only:
            cold = args.cold_cache.expanduser() if args.cold_cache else Path(tmp) / "cache"
            if cold.exists() and any(p.name != "backbones" for p in cold.iterdir()):
                sys.exit(f"error: --cold-cache {cold} is not empty, so the run would not be cold")
            cold_env = dict(env, EMOTUNE_CACHE=str(cold))
            # the converted backbone is not a feature: share it so "cold" means cold features only
            default_cache = Path(env.get("EMOTUNE_CACHE", Path.home() / ".cache" / "emotune"))
            if not args.cold_cache and (default_cache / "backbones").exists():
                cold.mkdir()
                os.symlink(default_cache / "backbones", cold / "backbones")
            result["cold_seconds"] = round(timed_cv(args.config, [*args.overrides, f"run_dir={tmp}/cold"], args.jobs, cold_env), 1)
            if args.cold_cache:
                env["EMOTUNE_CACHE"] = str(cold)  # warm = the cache the cold run just filled
        warm = args.run_dir or Path(tmp) / "warm"
        if (warm / "summary.json").exists():
            sys.exit(f"error: {warm} already holds a finished CV; timing it would measure skipped folds")
        result["warm_seconds"] = round(timed_cv(args.config, [*args.overrides, f"run_dir={warm}"], args.jobs, env), 1)
        result["load_average_after"] = round(os.getloadavg()[0], 2)
        summary = json.loads((warm / "summary.json").read_text())
        result["ua"] = summary["ua"]
    out = ROOT / "benchmarks" / "results" / f"cv_{name}.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
