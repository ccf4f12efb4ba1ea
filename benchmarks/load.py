"""Load test of `emotune serve` on loopback: throughput, latency and errors at 1, 8 and 32 concurrent clients.

    python benchmarks/load.py                        # the built-in SmolLM2-135M-Instruct, 20 / 80 / 256 requests
    python benchmarks/load.py --levels 1,8 --requests 10,40 --max-tokens 4

Starts `emotune serve` as a subprocess bound to 127.0.0.1 on a free port (this script never talks to
any other address), waits for it, sends a few warm-up requests, then for each concurrency level runs
that many clients, each sending chat completions back to back until the level's request count is
reached or its time limit passes. Every request is bounded: short replies (`--max-tokens`, default 8),
a per-request timeout, and a limit on the whole level.

Reports per level: requests, errors (any non-200 reply or transport failure, by kind), requests/s,
p50/p95/max latency and completion tokens/s; the server's resident memory (RSS) after start-up, after
the warm-up and after each level; and the server's own counters from /health. Writes
benchmarks/results/load.json and the "Load" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SECTION = "Load"
# Short utterances to label: varied so the server batches prompts of different lengths, as in real use.
UTTERANCES = [
    "I can't believe you did that to me!", "Oh wow, this is the best day ever.", "Leave me alone, please.",
    "Is someone there? I heard a noise.", "Ugh, that smells awful.", "We lost the match again.",
    "Thank you so much, really.", "Wait, you're moving to Paris? Since when?",
]


def prompt(i: int) -> list[dict]:
    text = UTTERANCES[i % len(UTTERANCES)]
    return [{"role": "user", "content": f'Which emotion does the speaker express? The person says: "{text}" '
                                        "Answer with one word."}]


def start_server(args, log_path: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "emotune.cli", "serve", "--host", HOST, "--port", "0",
           "--max-batch", str(args.max_batch), "--queue-size", str(args.queue_size)]
    cmd += ["--threads", str(args.threads)] + (["--model", args.model] if args.model else [])
    env = {**os.environ, "EMOTUNE_SERVE_FAULTS": ""}
    env.pop("EMOTUNE_API_KEY", None)
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.time() + args.start_timeout
    while time.time() < deadline:
        text = log_path.read_text(errors="replace")
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)/v1", text)
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"emotune serve exited with {proc.returncode}:\n{text[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"emotune serve did not start within {args.start_timeout} s")


def rss_mb(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


async def one_request(client, url: str, model: str, i: int, max_tokens: int) -> tuple[float, str, int]:
    """(seconds, outcome, completion tokens); outcome is "ok", "http_<status>" or the exception's name."""
    body = {"model": model, "messages": prompt(i), "max_tokens": max_tokens, "temperature": 0}
    t0 = time.perf_counter()
    try:
        r = await client.post(url, json=body)
    except Exception as exc:  # a timeout or a dropped connection counts as an error, the run goes on
        return time.perf_counter() - t0, type(exc).__name__, 0
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        return elapsed, f"http_{r.status_code}", 0
    try:
        reply = r.json()
        tokens = int(reply["usage"]["completion_tokens"])
        if not isinstance(reply["choices"][0]["message"]["content"], str):
            return elapsed, "bad_reply", 0
    except (ValueError, KeyError, IndexError, TypeError):
        return elapsed, "bad_reply", 0
    return elapsed, "ok", tokens


async def run_level(base: str, model: str, clients: int, total: int, max_tokens: int, time_limit: float,
                    request_timeout: float) -> dict:
    import httpx

    url = f"{base}/v1/chat/completions"
    results: list[tuple[float, str, int]] = []
    next_index = 0
    deadline = time.perf_counter() + time_limit

    async def client_loop(client):
        nonlocal next_index
        while next_index < total and time.perf_counter() < deadline:
            i = next_index
            next_index += 1  # one event loop: no lock needed
            results.append(await one_request(client, url, model, i, max_tokens))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        wall = time.perf_counter() - t0
    ok = [r for r in results if r[1] == "ok"]
    lat = np.array([r[0] for r in ok]) if ok else np.array([np.nan])
    errors: dict[str, int] = {}
    for _, outcome, _ in results:
        if outcome != "ok":
            errors[outcome] = errors.get(outcome, 0) + 1
    return {"clients": clients, "requests": len(results), "ok": len(ok), "errors": sum(errors.values()),
            "errors_by_kind": errors, "stopped_by_time_limit": len(results) < total, "wall_s": round(wall, 2),
            "requests_per_s": round(len(ok) / wall, 2), "latency_p50_s": round(float(np.percentile(lat, 50)), 3),
            "latency_p95_s": round(float(np.percentile(lat, 95)), 3), "latency_max_s": round(float(lat.max()), 3),
            "completion_tokens_per_s": round(sum(r[2] for r in ok) / wall, 1)}


def health(base: str) -> dict:
    import httpx

    return httpx.get(f"{base}/health", timeout=10).json()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def markdown(out: dict) -> list[str]:
    rows = ["| clients | requests | errors | requests/s | p50 latency (s) | p95 latency (s) | max (s) | completion tokens/s | server RSS after (MB) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for lv in out["levels"]:
        clients = f"{lv['clients']} (round {lv['round']})" if lv["round"] > 1 else str(lv["clients"])
        rows.append(f"| {clients} | {lv['requests']} | {lv['errors']} | {lv['requests_per_s']} | {lv['latency_p50_s']} | "
                    f"{lv['latency_p95_s']} | {lv['latency_max_s']} | {lv['completion_tokens_per_s']} | {lv['rss_after_mb']} |")
    rss = out["rss_mb"]
    h = out["server_health"]
    return [
        f"`python benchmarks/load.py`, {out['date']}: `emotune serve` ({out['model']}, fp32, {out['server_threads']}) on "
        f"127.0.0.1, OpenAI chat completions with max_tokens={out['max_tokens']} at temperature 0, clients sending back to "
        f"back over keep-alive connections (httpx). Machine: {out['machine']}; 1-minute load average "
        f"{out['load_average']['before']} before, {out['load_average']['after']} after (other jobs shared the cores).",
        "",
        *rows,
        "",
        f"Server RSS: {rss['after_start']} MB after start-up, {rss['after_warmup']} MB after {out['warmup_requests']} warm-up "
        f"requests, {rss['after_all']} MB after all {sum(lv['requests'] for lv in out['levels'])} measured requests "
        f"(growth over the measured requests: {rss['growth_over_measured']:+.1f} MB"
        + (f"; over the repeated last level alone: {rss['growth_over_last_round']:+.1f} MB" if "growth_over_last_round" in rss else "")
        + "). Weights are memory-mapped and count in RSS as they are first touched, hence the jump at the warm-up; "
        "larger batches need larger activation buffers, which the allocator keeps for reuse. The server batches up to "
        f"{out['max_batch']} requests per generation step and admits {out['queue_size']} at once (503 above that); "
        f"/health afterwards: served {h['served']['chat']}, refused {h['refused']}, pending {h['pending']}.",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="chat model for emotune serve (default: its built-in one)")
    ap.add_argument("--levels", default="1,8,32", help="concurrent clients per level")
    ap.add_argument("--requests", default="20,80,256", help="requests per level")
    ap.add_argument("--rounds", type=int, default=2,
                    help="times the last level runs: memory that still grows on a repeat of the same load would be a leak")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=4, help="requests before measuring (model first-call costs)")
    ap.add_argument("--level-time-limit", type=float, default=300.0, help="seconds; a level stops sending after this")
    ap.add_argument("--request-timeout", type=float, default=120.0)
    ap.add_argument("--start-timeout", type=float, default=240.0)
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="server torch threads")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--queue-size", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "load.json"))
    ap.add_argument("--no-markdown", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    totals = [int(x) for x in args.requests.split(",")]
    if len(levels) != len(totals):
        raise SystemExit("--levels and --requests need the same number of entries")

    load_before = round(os.getloadavg()[0], 1)
    with tempfile.TemporaryDirectory(prefix="emotune_load_") as tmp:
        log_path = Path(tmp) / "serve.log"
        proc, base = start_server(args, log_path)
        try:
            model = health(base)["model"]
            rss = {"after_start": rss_mb(proc.pid)}
            warm = asyncio.run(run_level(base, model, 1, args.warmup, args.max_tokens, args.level_time_limit,
                                         args.request_timeout))
            if warm["errors"]:
                raise SystemExit(f"warm-up failed: {warm['errors_by_kind']}\n{log_path.read_text()[-2000:]}")
            rss["after_warmup"] = rss_mb(proc.pid)
            results = []
            for n, (clients, total) in enumerate(zip(levels, totals)):
                for round_ in range(1, (args.rounds if n == len(levels) - 1 else 1) + 1):
                    lv = asyncio.run(run_level(base, model, clients, total, args.max_tokens, args.level_time_limit,
                                               args.request_timeout))
                    lv["round"] = round_
                    lv["rss_after_mb"] = rss_mb(proc.pid)
                    results.append(lv)
                    print(json.dumps(lv), flush=True)
            rss["after_all"] = rss_mb(proc.pid)
            rss["growth_over_measured"] = round(rss["after_all"] - rss["after_warmup"], 1)
            if len(results) > 1 and results[-1]["round"] > 1:
                rss["growth_over_last_round"] = round(results[-1]["rss_after_mb"] - results[-2]["rss_after_mb"], 1)
            server_health = health(base)
            server_log = log_path.read_text(errors="replace")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    out = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "model": model, "max_tokens": args.max_tokens,
           "warmup_requests": args.warmup, "max_batch": args.max_batch, "queue_size": args.queue_size,
           "server_threads": f"{args.threads} torch thread(s)", "machine": f"{cpu_name()}, {os.cpu_count()} cores",
           "load_average": {"before": load_before, "after": round(os.getloadavg()[0], 1)},
           "levels": results, "rss_mb": rss, "server_health": server_health,
           "server_warnings": [l for l in server_log.splitlines() if "warning" in l.lower()][:10]}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    if not args.no_markdown:
        from sections import replace_section

        replace_section(ROOT / "BENCHMARKS.md", SECTION, markdown(out))
    print(f"wrote {path}" + ("" if args.no_markdown else f" and the {SECTION} section of BENCHMARKS.md"))


if __name__ == "__main__":
    main()
