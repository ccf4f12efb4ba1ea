"""The feature store: make sure features exist for a manifest, and load them back.

`ensure_features` computes only what the cache lacks and returns a summary; `load_features` never
computes. Both find results by (extractor key, dataset/id, fingerprint of the input), so every fold,
ablation and later run reads the same arrays.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from emotune.paths import cache_home
from emotune.data.sample import Manifest, Sample
from emotune.errors import EmotuneError
from emotune.features.base import PENDING, Extractor, Missing, Output, Pending, get_extractor, is_failure
from emotune.features.cache import FeatureCache, Record
from emotune.features.runner import Failure, Task, run_tasks, sample_key

ASR = "asr"


def default_cache_dir(cache_dir: Path | str | None = None) -> Path:
    return Path(cache_dir) if cache_dir else cache_home() / "features"


def _stderr(msg: str) -> None:
    if msg.startswith("warning") or not os.environ.get("EMOTUNE_QUIET"):  # `emotune --quiet`: warnings only
        print(msg, file=sys.stderr)


def _run_order(names: list[str]) -> list[tuple[str, Extractor]]:
    """(name, extractor) pairs with ASR first, so text extractors later in the run read its transcripts,
    then the upstreams of derived extractors (`Extractor.upstream`, added when not named), then the rest.

    ASR runs only when it is named: it is slow, and a transcript is only worth making for a run whose
    model reads text (`emotune.features.text_use`); a text extractor without it embeds the samples'
    own text and counts the others as "no text and no ASR transcript"."""
    pairs = [(n, get_extractor(n)) for n in dict.fromkeys(names)]
    named = {ex.spec for _, ex in pairs}
    ups = [(u, get_extractor(u)) for u in dict.fromkeys(ex.upstream() for _, ex in pairs if ex.upstream()) if u not in named]
    return sorted(pairs + ups, key=lambda p: (p[1].name != ASR, p[1].upstream() is not None))


def _where(s: Sample, root: Path, src=None) -> str:
    """The file a failure is about (or the sample, for text), for a message a person can act on."""
    if src is not None and src.path is not None:
        return str(src.path)
    rel = s.audio or s.video or s.image
    return str(Path(root) / rel) if rel else sample_key(s)


def ensure_features(manifest: Manifest, names: list[str], cache_dir: Path | None = None, workers: int = 1,
                    progress: bool = True, flush_every: int = 32, log: Callable[[str], None] = _stderr) -> dict:
    """Extract whatever is not cached yet.
    Returns {name: {"done", "cached", "missing": {reason: n}, "modality", "failed": [{"path", "reason"}]}}.

    "done" counts samples computed now, "cached" those already there; "missing" counts samples without
    this modality, unreadable media (also recorded in the cache, so not retried until the file changes)
    and unexpected errors (not recorded: retried next run). "failed" lists the missing samples that are
    faults (`is_failure`: media absent or unreadable, errors), not samples that simply lack the input.
    Results are saved every `flush_every` samples.
    """
    if flush_every < 1:
        raise EmotuneError(f"flush_every must be at least 1, got {flush_every}")
    cache = FeatureCache(default_cache_dir(cache_dir))
    samples, root = manifest.samples, manifest.root
    datasets = {s.dataset for s in samples}
    order = _run_order(names)
    named = {get_extractor(n).spec for n in names}
    hidden = {ex.spec for _, ex in order if ex.spec not in named}  # upstreams run for derived extractors only
    stats: dict[str, dict] = {}
    plan: dict[str, set[int]] = {}
    transcripts: dict[str, str] = {}
    given: dict[str, dict[int, Output | Missing]] = {}  # upstream spec -> sample index -> its cached result
    where: dict[tuple[str, str], str] = {}  # (spec, sample key) -> its file, for failures found while computing
    upstreams = {ex.upstream() for _, ex in order} - {None}
    # Upstreams are planned last: they need the plans of the extractors derived from them.
    for _, ex in sorted(order, key=lambda p: p[1].spec in upstreams):
        if ex.spec in stats:
            continue
        st = stats[ex.spec] = {"done": 0, "cached": 0, "missing": Counter(), "modality": ex.modality, "failed": []}
        todo = plan.setdefault(ex.spec, set())
        # The samples whose derived features are to be computed: their upstream result is read or computed.
        needed = set().union(*(plan[d.spec] for _, d in order if d.upstream() == ex.spec))
        if ex.spec in hidden and not needed:
            continue  # everything derived from it is cached: do not even read its (large) shards
        # An upstream's arrays (Whisper states) are large: the index keeps where they lie, each is read when a
        # chunk derives from it. Its shards are not merged: each already holds megabytes.
        big = ex.spec in upstreams
        index = cache.scan(ex.key, datasets, repair=True, arrays=not big)
        for path, why in index.corrupt:
            log(f"warning: deleted corrupt cache shard {path} ({why}); its samples will be extracted again")
        if not big:
            cache.compact(ex.key, index)
        cache.write_info(ex.key, ex.info())
        for i, s in enumerate(samples):
            if ex.spec in hidden and i not in needed:
                continue
            try:
                src = ex.source(s, root, transcripts)
            except Pending:
                todo.add(i)
                continue
            except Missing as m:
                _count_missing(st, m.reason, s, root)
                continue
            entry = index.get(sample_key(s), src.fingerprint)
            if entry is None:
                todo.add(i)
                if src.path is not None:
                    where[ex.spec, sample_key(s)] = str(src.path)
            elif entry.ok:
                st["cached"] += 1
                if ex.name == ASR:
                    transcripts[s.id] = entry.value
            else:
                _count_missing(st, entry.reason, s, root, src)
            if entry is not None and i in needed:
                given.setdefault(ex.spec, {})[i] = Output(entry.value) if entry.ok else Missing(entry.reason)
        if ex.name == ASR:
            transcripts.update({samples[i].id: PENDING for i in todo})

    todo_all = sorted(set().union(*plan.values())) if plan else []
    tasks = []
    for start in range(0, len(todo_all), flush_every):
        chunk = todo_all[start: start + flush_every]
        pos = {i: p for p, i in enumerate(chunk)}
        specs = dict.fromkeys(ex.spec for _, ex in order)  # in run order: an upstream before what derives from it
        tasks.append(Task(
            root=str(root), samples=[dataclasses.asdict(samples[i]) for i in chunk],
            plan={spec: [pos[i] for i in chunk if i in plan[spec]] for spec in specs if any(i in plan[spec] for i in chunk)},
            transcripts={samples[i].id: transcripts[samples[i].id] for i in chunk
                         if transcripts.get(samples[i].id, PENDING) != PENDING},
            given={up: {samples[i].id: res[i] for i in chunk if i in res} for up, res in given.items()}))
    keys = {ex.spec: ex.key for _, ex in order}
    if tasks:
        from tqdm import tqdm

        bar = tqdm(total=len(todo_all), unit="sample", desc="features " + ",".join(n for n, _ in order),
                   disable=not progress or bool(os.environ.get("EMOTUNE_QUIET")), dynamic_ncols=True)
        try:
            for task, results in run_tasks(tasks, workers):
                for spec, rows in results.items():
                    records = []
                    for skey, fp, res in rows:
                        if isinstance(res, Output):
                            stats[spec]["done"] += 1
                        else:
                            stats[spec]["missing"][res.reason] += 1
                            if is_failure(res.reason):
                                stats[spec]["failed"].append({"path": where.get((spec, skey), skey), "reason": res.reason})
                        if fp and not isinstance(res, Failure):
                            records.append(Record(skey, fp, res))
                    if records:
                        cache.write_shard(keys[spec], records)
                bar.update(len(task.samples))
        finally:
            bar.close()
    return {name: {**stats[ex.spec], "missing": dict(stats[ex.spec]["missing"])} for name, ex in order if ex.spec not in hidden}


def _count_missing(st: dict, reason: str, s: Sample, root: Path, src=None) -> None:
    st["missing"][reason] += 1
    if is_failure(reason):
        st["failed"].append({"path": _where(s, root, src), "reason": reason})


def load_features(manifest: Manifest, names: list[str], cache_dir: Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """name -> sample id -> cached array. Never computes; samples without a current result are absent."""
    cache = FeatureCache(default_cache_dir(cache_dir))
    out: dict[str, dict] = {}
    transcripts: Optional[dict[str, str]] = None
    for name in dict.fromkeys(names):
        ex = get_extractor(name)
        if ex.uses_transcripts and transcripts is None:
            transcripts = load_transcripts(manifest, cache_dir)
        out[name] = {s.id: e.value for s, e in _current(cache, ex, manifest, transcripts or {}) if e is not None and e.ok}
    return out


def load_transcripts(manifest: Manifest, cache_dir: Path | None = None, spec: str = ASR) -> dict[str, str]:
    """Sample id -> cached ASR transcript (only samples that had audio and no text)."""
    cache = FeatureCache(default_cache_dir(cache_dir))
    return {s.id: e.value for s, e in _current(cache, get_extractor(spec), manifest, {}) if e is not None and e.ok}


def load_face_crops(manifest: Manifest, cache_dir: Path | None = None, spec: str = "fer") -> dict[str, Path]:
    """Sample id -> PNG of the most expressive face the face extractor saw (for reports and the demo)."""
    cache = FeatureCache(default_cache_dir(cache_dir))
    return {s.id: e.crops["peak"] for s, e in _current(cache, get_extractor(spec), manifest, {})
            if e is not None and e.ok and "peak" in e.crops and e.crops["peak"].exists()}


def coverage(manifest: Manifest, names: list[str], cache_dir: Path | None = None) -> dict[str, dict]:
    """Per extractor: how many samples have a current result, which are missing and why, which were never run.

    `not_applicable` counts the missing samples that have no input of this kind at all (an audio-only
    sample for a face extractor); the rest of `missing` are inputs that could not be read. `failed` lists
    the faults among them (`is_failure`), including media files that are gone since the last extraction."""
    cache = FeatureCache(default_cache_dir(cache_dir))
    transcripts = None
    report = {}
    root = manifest.root
    for name in dict.fromkeys(names):
        ex = get_extractor(name)
        if ex.uses_transcripts and transcripts is None:
            transcripts = load_transcripts(manifest, cache_dir)
        row = {"modality": ex.modality, "key": ex.key, "total": len(manifest.samples), "present": 0,
               "missing": Counter(), "not_extracted": 0, "not_applicable": 0, "failed": []}
        for s, e, src in _current(cache, ex, manifest, transcripts or {}, keep_missing=True, with_source=True):
            if isinstance(e, Missing):  # no input of this kind (no video, no text...), or a path outside the root
                _count_missing(row, e.reason, s, root)
                row["not_applicable"] += not is_failure(e.reason)
            elif e is None and src.path is not None and not src.path.exists():
                _count_missing(row, "file not found", s, root, src)  # deleted since it was extracted
            elif e is None:
                row["not_extracted"] += 1
            elif e.ok:
                row["present"] += 1
            else:
                _count_missing(row, e.reason, s, root, src)
        row["missing"] = dict(row["missing"])
        report[name] = row
    return report


def _current(cache: FeatureCache, ex: Extractor, manifest: Manifest, transcripts: dict[str, str], keep_missing: bool = False,
             with_source: bool = False):
    """(sample, entry or None) for every sample that has this modality; with keep_missing also (sample, Missing).
    with_source adds the Source (None beside a Missing) as a third item."""
    index = cache.scan(ex.key, {s.dataset for s in manifest.samples})
    for path, why in index.corrupt:
        _stderr(f"warning: skipping corrupt cache shard {path} ({why}); `emotune features` will rebuild it")
    root = manifest.root
    for s in manifest.samples:
        try:
            src = ex.source(s, root, transcripts)
        except Missing as m:
            if keep_missing:
                yield (s, m, None) if with_source else (s, m)
            continue
        except Pending:
            continue
        entry = index.get(sample_key(s), src.fingerprint)
        yield (s, entry, src) if with_source else (s, entry)


def extractor_info(name: str) -> dict:
    """{"modality", "shape", "version", "spec", "key", "settings", "name"} of an extractor spec."""
    return get_extractor(name).info()


def extract_output(name: str, sample: Sample, root: Path) -> Output:
    """Compute one sample without the cache (predict / demo on a raw file); a media problem is an EmotuneError."""
    ex = get_extractor(name)
    transcripts = {}
    if ex.uses_transcripts and not sample.text and (sample.audio or sample.video):
        transcripts[sample.id] = extract_one(ASR, sample, root)
    try:
        src = ex.source(sample, Path(root), transcripts)
        result = ex.compute_batch([src])[0]
    except Missing as m:
        result = m
    if isinstance(result, Missing):
        media = sample.audio or sample.video or sample.image or "text"
        raise EmotuneError(f"{name}: {media}: {result.reason}")
    return result


def extract_one(name: str, sample: Sample, root: Path) -> np.ndarray | str:
    return extract_output(name, sample, root).value
