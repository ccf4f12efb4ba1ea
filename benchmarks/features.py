"""Feature extraction speed: clips per second per extractor, with the cache cold and warm.

    python benchmarks/features.py                                   # RAVDESS manifest, default extractors
    python benchmarks/features.py --cold-samples 24 --extractors egemaps,whisper
    python benchmarks/features.py --warm-only

Cold: a fresh temporary cache, one extractor at a time on a spread of `--cold-samples` clips (every
actor represented); the model load is timed apart (one warm-up clip) so the rate is the steady one.
Warm: `ensure_features` over the whole manifest against the default cache (fill it first with
`emotune features`): it should compute nothing, so its rate is the cost of checking the cache; the
time to `load_features` every array is reported too. Writes benchmarks/results/features.json and the
"Features" section of BENCHMARKS.md. Machine load is recorded: on a shared machine rates vary.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emotune.data.sample import read_manifest  # noqa: E402
from emotune.features.store import default_cache_dir, ensure_features, load_features  # noqa: E402

DEFAULT = "egemaps,logmel,whisper,whisper_seq,minilm"
SECTION = "Features"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def spread(samples: list, n: int) -> list:
    step = max(1, len(samples) // n)
    return samples[::step][:n]


def cold(manifest, names: list[str], n: int) -> dict:
    from emotune.features.whisper import WhisperBackend

    rows = {}
    subset = spread(manifest.samples, n + 1)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            cache = Path(tmp) / name.replace("/", "_")
            WhisperBackend.forget()  # pooled and segment Whisper features share encoder states in one process
            warm_up, timed = copy.copy(manifest), copy.copy(manifest)
            warm_up.samples, timed.samples = subset[:1], subset[1:]
            t0 = time.perf_counter()
            ensure_features(warm_up, [name], cache, progress=False)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            summary = ensure_features(timed, [name], cache, progress=False)
            seconds = time.perf_counter() - t0
            done = sum(s["done"] for s in summary.values())
            rows[name] = {"clips": len(timed.samples), "done": done, "seconds": round(seconds, 2),
                          "clips_per_s": round(len(timed.samples) / seconds, 2), "first_clip_with_load_s": round(load_s, 2)}
            print(f"cold {name}: {rows[name]}", flush=True)
    return rows


def warm(manifest, names: list[str], cache_dir) -> dict:
    rows = {}
    for name in names:
        t0 = time.perf_counter()
        summary = ensure_features(manifest, [name], cache_dir, progress=False)[name]
        check_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        arrays = load_features(manifest, [name], cache_dir)[name]
        load_s = time.perf_counter() - t0
        rows[name] = {"clips": len(manifest.samples), "done": summary["done"], "cached": summary["cached"],
                      "missing": summary["missing"], "seconds": round(check_s, 2),
                      "clips_per_s": round(len(manifest.samples) / check_s, 1), "load_features_s": round(load_s, 2),
                      "loaded": len(arrays)}
        print(f"warm {name}: {rows[name]}", flush=True)
    return rows


def update_markdown(path: Path, result: dict) -> None:
    """Replace (or append) the Features section; other sections of the file are left as they are."""
    lines = [f"## {SECTION}", "",
             f"Clips per second per extractor on {result['dataset']} ({result['manifest']}), "
             f"`python benchmarks/features.py`, {result['date']}. Machine: {result['machine']}; "
             f"OMP_NUM_THREADS={result['omp_num_threads']}; 1-minute load average before the cold runs "
             f"{result['load_average'].get('cold')}, before the warm runs {result['load_average'].get('warm')} "
             "(other jobs shared the cores, so cold rates are lower than on an idle machine). "
             "Cold = fresh cache, model load excluded (shown apart); warm = everything cached, the whole manifest checked. "
             "Each cold row runs alone; asked together, whisper and whisper_seq share one encoder pass per clip.", "",
             "| extractor | cold clips/s | cold clips | model load + 1st clip (s) | warm clips/s | warm: computed | load_features (s) |",
             "|---|---|---|---|---|---|---|"]
    for name in result["extractors"]:
        c, w = result.get("cold", {}).get(name, {}), result.get("warm", {}).get(name, {})
        lines.append(f"| {name} | {c.get('clips_per_s', '-')} | {c.get('clips', '-')} | {c.get('first_clip_with_load_s', '-')} | "
                     f"{w.get('clips_per_s', '-')} | {w.get('done', '-')} of {w.get('clips', '-')} | {w.get('load_features_s', '-')} |")
    full = result.get("full_run")
    if full:
        lines += ["", f"Full extraction of {full['extractors']} over {full['clips']} clips in one run "
                      f"(workers {full['workers']}): {full['wall']} ({full['note']})."]
    section = "\n".join(lines) + "\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\nLatest measured numbers; each section is written by its script in benchmarks/.\n"
    pattern = re.compile(rf"^## {SECTION}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", default="runs/manifests/ravdess.jsonl",
                    help="(make it with: emotune prepare ravdess <root> -o runs/manifests/ravdess.jsonl)")
    ap.add_argument("--extractors", default=DEFAULT)
    ap.add_argument("--cold-samples", type=int, default=48)
    ap.add_argument("--cache-dir", help="warm cache (default: $EMOTUNE_CACHE/features)")
    ap.add_argument("--warm-only", action="store_true")
    ap.add_argument("--full-run", help="JSON with a timed full extraction to quote (wall, workers, note)")
    args = ap.parse_args()
    names = [n for n in args.extractors.split(",") if n]
    manifest = read_manifest(ROOT / args.manifest if not Path(args.manifest).is_absolute() else args.manifest)
    previous = {}
    out = ROOT / "benchmarks" / "results" / "features.json"
    if out.exists():
        previous = json.loads(out.read_text())
    result = {"dataset": manifest.dataset, "manifest": args.manifest, "extractors": names,
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "machine": f"{cpu_name()}, {os.cpu_count()} cores",
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "load_average": {}}
    if args.warm_only:
        result["cold"] = previous.get("cold", {})
        result["load_average"]["cold"] = previous.get("load_average", {}).get("cold")
    else:
        result["load_average"]["cold"] = round(os.getloadavg()[0], 1)
        result["cold"] = cold(manifest, names, args.cold_samples)
    result["load_average"]["warm"] = round(os.getloadavg()[0], 1)
    result["warm"] = warm(manifest, names, default_cache_dir(args.cache_dir))
    if args.full_run:
        result["full_run"] = json.loads(Path(args.full_run).read_text())
    elif previous.get("full_run"):
        result["full_run"] = previous["full_run"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    update_markdown(ROOT / "BENCHMARKS.md", result)
    print(f"wrote {out.relative_to(ROOT)} and the {SECTION} section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
