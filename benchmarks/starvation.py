"""Does a maximal-duration upload starve short ones? A 3-s clip on `/v1/emotion`, alone and while a long upload runs.

    python benchmarks/starvation.py                      # needs EMOTUNE_DATA (RAVDESS); builds a small run
    python benchmarks/starvation.py --run runs/x         # an existing trained run instead
    python benchmarks/starvation.py --no-baseline        # skip the run with the long-clip worker turned off

Builds the same small run as the serving tests (logistic regression on eGeMAPS + MiniLM, two RAVDESS actors),
so the server transcribes every clip with Whisper (the run reads text and no text is sent) — the slowest,
shared extractor. Makes a long clip of real speech (RAVDESS clips of other actors, end to end) just under
the server's duration limit. Starts `emotune serve RUN --no-chat` on 127.0.0.1 (a free port; this script
talks to no other address) and:

1. warms it up with the short clip (extractor models load), then times the short clip alone `--repeats` times;
2. posts the long clip, waits until the server is working on it, and times the short clip again while it runs;
3. records how long the long upload took.

With `--baseline` (default) it repeats step 2 with `--long-clip-s 0` (every clip in the server process, as
before the long-clip worker existed) to show the starvation being fixed; that short request is given
`--baseline-timeout` seconds. The target is contended / solo <= 2. Writes benchmarks/results/starvation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TRAIN_ACTORS = ("actor01", "actor02")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown CPU"


def build_run(work: Path, data: Path) -> Path:
    """The serving tests' run: LR on eGeMAPS + MiniLM, first repetition of two RAVDESS actors."""
    import yaml

    from emotune.data.prepare import prepare
    from emotune.data.sample import read_manifest, write_manifest
    from emotune.experiments.run import train

    root = data / "ravdess_speech"
    prepare("ravdess", root, work / "all.jsonl", log=lambda *a: None)
    full = read_manifest(work / "all.jsonl")
    keep = [s for s in full.samples if s.group in TRAIN_ACTORS and s.meta["repetition"] == 1]
    write_manifest(work / "two_actors.jsonl", "ravdess", root, full.label_set, full.subset, keep)
    recipe = {"name": "starvation_bench", "run_dir": str(work / "run"),
              "data": {"dataset": "ravdess", "root": str(root), "manifest": str(work / "two_actors.jsonl"),
                       "protocol": "group_kfold", "folds": 2, "fold": 1},
              "features": {"cache_dir": str(work / "features")},
              "model": {"kind": "baseline_lr", "inputs": ["egemaps", "minilm"]}}
    (work / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return train(str(work / "recipe.yaml"), ["model.baseline.C_grid=[0.1]"])


def make_long_clip(data: Path, seconds: float, out: Path) -> float:
    """RAVDESS speech of actors the run never saw, end to end, cut to `seconds` (16 kHz mono WAV)."""
    import soundfile as sf

    from emotune.media.audio import SAMPLE_RATE, load_audio

    parts, total = [], 0
    for clip in sorted((data / "ravdess_speech").glob("Actor_1[0-9]/*.flac")):
        audio = load_audio(clip, SAMPLE_RATE)
        parts.append(audio)
        total += len(audio)
        if total >= seconds * SAMPLE_RATE:
            break
    audio = np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]
    sf.write(str(out), audio, SAMPLE_RATE, subtype="PCM_16")
    return len(audio) / SAMPLE_RATE


def start_server(run: Path, args, long_clip_s: float, log_path: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "emotune.cli", "serve", str(run), "--no-chat", "--host", HOST, "--port", "0",
           "--max-duration-s", str(args.max_duration_s), "--long-clip-s", str(long_clip_s)]
    env = {k: v for k, v in os.environ.items() if k != "EMOTUNE_API_KEY"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.time() + 240
    while time.time() < deadline:
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)/v1", log_path.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"emotune serve exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("emotune serve did not start within 240 s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM first: the server cancels requests in flight and their upload folders are removed."""
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def post(base: str, clip: Path, timeout: float) -> tuple[float, str]:
    """(seconds, outcome): outcome "ok", "http_<status>" or the exception's name."""
    import httpx

    t0 = time.perf_counter()
    try:
        with open(clip, "rb") as f:
            r = httpx.post(f"{base}/v1/emotion", files={"file": (clip.name, f)}, timeout=timeout)
    except Exception as exc:  # a timeout is a measurement here, not a failure of the script
        return time.perf_counter() - t0, type(exc).__name__
    outcome = "ok" if r.status_code == 200 else f"http_{r.status_code}"
    return time.perf_counter() - t0, outcome


def busy_with_long(base: str) -> bool:
    import httpx

    return httpx.get(f"{base}/health", timeout=10).json()["pending"] >= 1


def contended(base: str, short: Path, long: Path, repeats: int, settle_s: float, short_timeout: float,
              long_timeout: float, wait_long: bool) -> dict:
    """Short clips sent one after another while the long upload is being processed."""
    box: dict = {}

    def send_long():
        box["long"] = post(base, long, long_timeout)

    thread = threading.Thread(target=send_long, daemon=True)
    t_long = time.perf_counter()
    thread.start()
    while not busy_with_long(base):  # the upload arrived and was admitted
        time.sleep(0.1)
    time.sleep(settle_s)  # inside extraction (ASR) by now, not merely uploading
    shorts = []
    for _ in range(repeats):
        seconds, outcome = post(base, short, short_timeout)
        shorts.append({"seconds": round(seconds, 2), "outcome": outcome, "long_still_running": thread.is_alive()})
        if outcome != "ok":
            break
    out = {"short": shorts}
    if wait_long:
        thread.join(long_timeout)
        long_s, long_outcome = box.get("long", (time.perf_counter() - t_long, "still running"))
        out["long"] = {"seconds": round(long_s, 1), "outcome": long_outcome}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a trained run (default: build the small test run)")
    ap.add_argument("--max-duration-s", type=float, default=300.0, help="the server's limit")
    ap.add_argument("--long-s", type=float, default=299.0, help="length of the long upload (just under the limit)")
    ap.add_argument("--long-clip-s", type=float, default=30.0, help="the server's long-clip threshold")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--settle-s", type=float, default=5.0, help="seconds between the long upload's admission and the first short one")
    ap.add_argument("--long-timeout", type=float, default=1200.0)
    ap.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure with the long-clip worker off (--long-clip-s 0)")
    ap.add_argument("--baseline-timeout", type=float, default=240.0)
    args = ap.parse_args()
    data = Path(os.environ.get("EMOTUNE_DATA", ""))
    if not (data / "ravdess_speech").is_dir():
        sys.exit("error: set EMOTUNE_DATA to the folder holding ravdess_speech/")

    work = Path(tempfile.mkdtemp(prefix="emotune_starvation_"))
    procs: list[subprocess.Popen] = []
    try:
        run = args.run or build_run(work, data)
        short = sorted((data / "ravdess_speech" / "Actor_03").glob("*.flac"))[0]
        long = work / "long.wav"
        long_s = make_long_clip(data, args.long_s, long)
        import soundfile as sf

        short_s = sf.info(str(short)).duration
        result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "cpu": cpu_model(), "cores": os.cpu_count(),
                  "load_average_before": round(os.getloadavg()[0], 2),
                  "run": "baseline_lr on egemaps + minilm (2 RAVDESS actors)" if not args.run else str(args.run),
                  "short_clip_s": round(short_s, 2), "long_clip_s": round(long_s, 1),
                  "server": {"max_duration_s": args.max_duration_s, "long_clip_s": args.long_clip_s},
                  "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset (library defaults)"),
                  "note": "no text is sent, so every clip is transcribed by Whisper (the run reads text)"}

        proc, base = start_server(run, args, args.long_clip_s, work / "server.log")
        procs.append(proc)
        warm = [post(base, short, 300) for _ in range(2)]
        if any(o != "ok" for _, o in warm):
            raise SystemExit(f"warm-up failed: {warm}\n{(work / 'server.log').read_text()[-2000:]}")
        solo = [post(base, short, 300) for _ in range(args.repeats)]
        result["solo_s"] = [round(s, 2) for s, _ in solo]
        result["contended"] = contended(base, short, long, args.repeats, args.settle_s, 300, args.long_timeout, True)
        stop(proc)

        ok = [s["seconds"] for s in result["contended"]["short"] if s["outcome"] == "ok"]
        result["solo_median_s"] = round(float(np.median(result["solo_s"])), 2)
        result["contended_median_s"] = round(float(np.median(ok)), 2) if ok else None
        result["ratio"] = round(result["contended_median_s"] / result["solo_median_s"], 2) if ok else None
        result["target_ratio"] = 2.0
        result["meets_target"] = bool(ok) and result["ratio"] <= 2.0 and all(
            s["long_still_running"] for s in result["contended"]["short"])

        if args.baseline:
            proc, base = start_server(run, args, 0, work / "server_off.log")
            procs.append(proc)
            for _ in range(2):
                post(base, short, 300)
            off = contended(base, short, long, 1, args.settle_s, args.baseline_timeout, args.long_timeout, False)
            result["without_long_clip_worker"] = {
                "short": off["short"],
                "note": f"--long-clip-s 0: the short clip was given {args.baseline_timeout:g} s; the server was then stopped"}
            stop(proc)
        result["load_average_after"] = round(os.getloadavg()[0], 2)
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "results" / "starvation.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
