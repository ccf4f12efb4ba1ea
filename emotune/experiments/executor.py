"""Where the runs of a CV or a grid execute: local processes (default) or Ray tasks.

A job is one `emotune train` command and the run directory it writes. Both executors run that same
command, so a fold trained on a Ray worker is byte-for-byte the run a local fold would have made, and
the summary/table code only ever reads run directories. emotune schedules nothing itself: locally a
thread pool starts at most `parallel` processes; on Ray each job is a task with a CPU request and
Ray's own retries.

Ray across machines needs the run directories, the manifest and the feature cache on a filesystem
every node sees at the same path (NFS or similar), and emotune installed on every node.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from emotune.errors import EmotuneError

EXECUTORS = ("local", "ray")


@dataclasses.dataclass
class Job:
    name: str  # e.g. "focal/fold-3", for logs and error messages
    cmd: list[str]
    run_dir: Path


def thread_env(threads_per_job: int) -> dict[str, str]:
    # Parallel runs share the cores: give each its slice instead of oversubscribing (15-100x slower).
    # An explicit OMP_NUM_THREADS (e.g. 1 on a machine shared with other jobs) is respected.
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, threads_per_job))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_one(cmd: list[str], run_dir: str, env_overrides: dict[str, str], cwd: str) -> dict:
    """Run one job, appending its output to run_dir/train.log; raises on a non-zero exit (Ray retries that).

    The child gets this process's environment (on a Ray worker: the node's, with the GPUs Ray assigned)
    plus the thread settings."""
    env = {**os.environ, **env_overrides}
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(d / "train.log", "ab") as logf:
        logf.write(f"\n=== attempt at {time.strftime('%Y-%m-%d %H:%M:%S')} on {os.uname().nodename}\n".encode())
        logf.flush()
        rc = subprocess.run(cmd, env=env, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT).returncode
        logf.write(f"=== exit {rc} after {time.time() - t0:.1f} s\n".encode())
    if rc != 0:
        raise RuntimeError(f"exit {rc}; see {d / 'train.log'}")
    return {"seconds": time.time() - t0, "node": os.uname().nodename}


def run_local(jobs: list[Job], parallel: int, log: Callable[[str], None]) -> list[str]:
    env = thread_env((os.cpu_count() or 1) // max(1, parallel))
    failures = []

    def one(job: Job) -> None:
        try:
            info = run_one(job.cmd, str(job.run_dir), env, os.getcwd())
            log(f"{job.name} finished in {info['seconds']:.0f} s")
        except RuntimeError as exc:
            failures.append(f"{job.name}: {exc}")
            log(f"{job.name} failed: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(one, jobs))
    return failures


def run_ray(jobs: list[Job], cpus_per_job: float, gpus_per_job: float, address: Optional[str], retries: int,
            log: Callable[[str], None]) -> list[str]:
    try:
        import ray
    except ImportError:
        raise EmotuneError("--executor ray needs Ray: pip install -r requirements-ray.txt (make setup installs it)") from None
    started_here = not ray.is_initialized()
    if started_here:
        # No address: a local cluster on this machine, gone when the command ends.
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        env = thread_env(max(1, int(cpus_per_job)))
        task = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=retries,
                          retry_exceptions=True)(run_one)
        refs = {task.remote(job.cmd, str(job.run_dir.resolve()), env, os.getcwd()): job for job in jobs}
        log(f"{len(jobs)} run(s) as Ray tasks ({cpus_per_job:g} CPU{f', {gpus_per_job:g} GPU' if gpus_per_job else ''} each, "
            f"{retries} retr{'y' if retries == 1 else 'ies'}) on {ray.cluster_resources().get('CPU', 0):g} CPUs")
        failures = []
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            job = refs[ready[0]]
            try:
                info = ray.get(ready[0])
                attempts = (job.run_dir / "train.log").read_text(errors="replace").count("\n=== attempt at ")
                extra = f" after {attempts} attempts" if attempts > 1 else ""
                log(f"{job.name} finished in {info['seconds']:.0f} s on {info['node']}{extra}")
            except Exception as exc:  # a task that failed on every retry
                cause = str(getattr(exc, "cause", None) or exc).strip().splitlines()[-1]
                failures.append(f"{job.name}: {cause} (tried {retries + 1} times)")
                log(f"{job.name} failed after {retries + 1} attempts: {cause}")
        return failures
    finally:
        if started_here:
            ray.shutdown()


@dataclasses.dataclass
class ExecutorOptions:
    kind: str = "local"  # local | ray
    jobs: int = 1  # local: runs at a time
    address: Optional[str] = None  # ray: cluster address ("auto", "ray://host:10001"); none = a local cluster
    cpus_per_run: float = 1.0  # ray: each task's resource request
    gpus_per_run: float = 0.0
    retries: int = 1  # ray: a failed task is run again this many times


def run_jobs(jobs: list[Job], opts: ExecutorOptions = ExecutorOptions(), log: Callable[[str], None] = print) -> None:
    """Run every job; a failed one does not stop the others. Raises at the end naming the failures."""
    if not jobs:
        return
    if opts.kind == "local":
        failures = run_local(jobs, opts.jobs, log)
    elif opts.kind == "ray":
        failures = run_ray(jobs, opts.cpus_per_run, opts.gpus_per_run, opts.address, opts.retries, log)
    else:
        raise EmotuneError(f"unknown executor {opts.kind!r}: use one of {', '.join(EXECUTORS)}")
    if failures:
        raise EmotuneError(f"{len(failures)} of {len(jobs)} run(s) failed:\n  " + "\n  ".join(failures))
