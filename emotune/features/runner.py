"""Computing features for chunks of samples, in this process or in a pool of worker processes.

A chunk is the unit of work and of saving: each finished chunk becomes one shard per extractor, so a
killed run loses at most the chunks in flight. Every worker builds each extractor once (models load on
first use) and keeps it for all the chunks it is given.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator

from emotune.data.sample import Sample
from emotune.errors import EmotuneError
from emotune.features.base import Missing, Output, get_extractor
from emotune.features.cache import ShardError, Stored
from emotune.media.errors import MediaError


@dataclasses.dataclass
class Failure:
    """An unexpected error on one sample: reported, not cached, so the next run tries again."""

    reason: str


@dataclasses.dataclass
class Task:
    root: str
    samples: list[dict]  # Sample fields (plain data, cheap to send to a worker)
    plan: dict[str, list[int]]  # spec -> positions in `samples` to compute, in extractor order
    transcripts: dict[str, str]  # sample id -> cached ASR text, for text extractors
    # upstream spec -> sample id -> its cached result, for the extractors derived from it (`Extractor.upstream`)
    given: dict[str, dict[str, object]] = dataclasses.field(default_factory=dict)


def run_chunk(task: Task) -> dict[str, list[tuple[str, str, object]]]:
    """spec -> [(dataset/id, fingerprint, Output | Missing | Failure)] for every planned sample."""
    root = Path(task.root)
    samples = [Sample(**d) for d in task.samples]
    transcripts = dict(task.transcripts)
    given = {spec: dict(v) for spec, v in task.given.items()}
    upstreams = {get_extractor(spec).upstream() for spec in task.plan}
    results: dict[str, list[tuple[str, str, object]]] = {}
    for spec, positions in task.plan.items():
        ex = get_extractor(spec)
        inputs = given.get(ex.upstream(), {})
        out: list[tuple[str, str, object]] = []
        ready = []
        for pos in positions:
            s = samples[pos]
            try:
                ready.append((s, ex.source(s, root, transcripts)))
            except Missing as m:
                out.append((sample_key(s), "", m))  # no fingerprint: counted, never cached
        for start in range(0, len(ready), ex.batch_size):
            batch = ready[start: start + ex.batch_size]
            for (s, src), res in zip(batch, _compute(ex, [src for _, src in batch], [inputs.get(s.id) for s, _ in batch])):
                out.append((sample_key(s), src.fingerprint, res))
                if ex.name == "asr" and isinstance(res, Output):
                    transcripts[s.id] = res.value  # text extractors later in this chunk read it
                if spec in upstreams:
                    given.setdefault(spec, {})[s.id] = res  # extractors later in this chunk derive from it
        results[spec] = out
    return results


def _compute(ex, sources, inputs) -> list:
    """Results for `sources`: derived from the upstream result in `inputs` where there is one, else computed."""
    out = [_derive(ex, given) if given is not None else None for given in inputs]
    rest = [i for i, r in enumerate(out) if r is None]
    if rest:
        for i, r in zip(rest, _compute_sources(ex, [sources[i] for i in rest])):
            out[i] = r
    return out


def _derive(ex, given):
    """`ex` of an upstream result; None when a cached upstream array cannot be read any more (computed then)."""
    if not isinstance(given, Output):
        return given  # the upstream is Missing (or failed) for this sample: so is everything derived from it
    value = given.value
    if isinstance(value, Stored):
        try:
            value = value.load()
        except (OSError, ShardError):  # its shard was merged away or damaged since the run was planned
            return None
    try:
        return ex.derive(value)
    except Exception as exc:
        return _failure(exc)


def _compute_sources(ex, sources) -> list:
    try:
        return ex.compute_batch(sources)
    except Exception:
        return [_one(ex, src) for src in sources]  # again one by one, to isolate the sample that broke the batch


def _one(ex, src):
    try:
        return ex.compute_batch([src])[0]
    except MediaError as exc:
        return Missing(exc.reason)
    except EmotuneError:
        raise  # a problem with the setup (a model folder, a setting): every sample would fail the same way
    except Exception as exc:
        return _failure(exc)


def _failure(exc: Exception) -> Failure:
    return Failure(f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}")


def sample_key(s: Sample) -> str:
    return f"{s.dataset}/{s.id}"


def run_tasks(tasks: list[Task], workers: int) -> Iterator[tuple[Task, dict]]:
    """Yield (task, results) as chunks finish: in order in-process, as they come with workers."""
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield t, run_chunk(t)
        return
    import multiprocessing as mp

    from emotune.process import scoped_env

    # Children inherit the environment: cap each one's math threads so N workers do not fight over the cores.
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    with scoped_env({k: threads for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}):
        # spawn, not fork: torch and CTranslate2 thread pools do not survive a fork reliably.
        pool = mp.get_context("spawn").Pool(workers)
    try:
        for t, res in pool.imap_unordered(_run_indexed, list(enumerate(tasks))):
            yield tasks[t], res
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _run_indexed(item: tuple[int, Task]) -> tuple[int, dict]:
    i, task = item
    return i, run_chunk(task)
