"""`emotune instruct`: instruction data in the LLaVA conversation layout, from clues and an LLM.

Three kinds per sample (EmoVIT's recipe, with MERR's label filter):

- categorical: a templated question and the gold label as answer (no LLM);
- reasoning: a question from the pool; the LLM answers it from the clue caption;
- conversation: simple questions, then a complex one, answered by the LLM turn by turn.

One record per (sample, kind), one JSON object per line:

    {"id": "<sample id>/reasoning", "sample_id": ..., "dataset": ..., "kind": "reasoning", "label": "angry",
     "audio": "Actor_01/....flac", "video": null, "image": null,
     "conversations": [{"from": "human", "value": "<audio>\\n...question"}, {"from": "gpt", "value": "..."}],
     "caption": "the clues the LLM saw", "llm": {"model": ..., "prompt_tokens": ..., "completion_tokens": ...}}

Media paths are relative to the dataset root, as in the manifest; `sample_id` and `label` join a record
to its manifest row. The file is only ever appended to, one whole line per write, so a run killed at any
moment leaves complete records (a torn last line is cut off on the next start) and a rerun skips every
id already written. Replies that cannot be used are asked again, then skipped and counted; replies whose
implied emotion contradicts the gold label are dropped and counted (in `<output>.rejected.jsonl`, which
a rerun also skips unless `instruct.retry_rejected`). `<output>.stats.json` keeps every run's counts
and their totals (emotune/instruct/output.py).

When LLM-written records remain to be made, the endpoint is checked before anything is written: an
unreachable or non-OpenAI endpoint stops the run with one line and leaves no file or folder behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from emotune.data.labels import LabelSet, load_label_set
from emotune.data.sample import Manifest, Sample
from emotune.errors import EmotuneError
from emotune.instruct import clues as clue_mod
from emotune.instruct.config import InstructRecipe, LLMConfig
from emotune.instruct.output import JsonlAppender, RunStats, read_ids, rejected_path
from emotune.instruct.records import Filtered, Job, LLMWriter, Skipped, categorical_record, record_id
from emotune.instruct.templates import load_prompts

LLM_KINDS = ("reasoning", "conversation")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def select_samples(cfg: InstructRecipe, manifest: Manifest, labels: LabelSet) -> tuple[list[tuple[Sample, str]], Counter]:
    """(sample, gold label in the subset) for the samples the recipe asks for; counts of those left out."""
    ins = cfg.instruct
    dropped: Counter = Counter()
    wanted_ids = set(ins.ids)
    unknown = wanted_ids - {s.id for s in manifest.samples}
    if unknown:
        raise EmotuneError(f"instruct.ids: {len(unknown)} id(s) not in {manifest.path}, e.g. {sorted(unknown)[0]}")
    out = []
    for s in manifest.samples:
        if wanted_ids and s.id not in wanted_ids:
            continue
        if ins.groups and s.group not in ins.groups:
            continue
        gold = labels.to_subset(s.label)
        if gold is None:
            dropped["no label in subset"] += 1
            continue
        out.append((s, gold))
    if ins.groups and not out:
        raise EmotuneError(f"instruct.groups {ins.groups}: no labelled sample in these groups")
    if ins.limit:
        dropped["over limit"] += max(0, len(out) - ins.limit)
        out = out[: ins.limit]
    return out, dropped


def load_clues(cfg: InstructRecipe, manifest: Manifest, chosen: list[Sample], captions: dict, names: list[str],
               log: Callable[[str], None]) -> dict[str, clue_mod.Clues]:
    """Clues of the chosen samples from the clue features `names`, extracting what the feature cache lacks.

    eGeMAPS is made for every recording of the chosen samples' speakers, because each speaker's
    baseline is computed from all of them.
    """
    from emotune.features.store import ensure_features, load_features, load_transcripts

    ins = cfg.instruct
    cache_dir = Path(cfg.features.cache_dir) if cfg.features.cache_dir else None
    chosen_ids = {s.id for s in chosen}
    groups = {s.group for s in chosen if s.group is not None}
    if clue_mod.EGEMAPS in names and ins.baseline == "group":
        speakers = [s for s in manifest.samples if s.id in chosen_ids or (s.group is not None and s.group in groups)]
    elif clue_mod.EGEMAPS in names:
        speakers = list(manifest.samples)
    else:
        speakers = list(chosen)
    scope = dataclasses.replace(manifest, samples=speakers)
    only_chosen = dataclasses.replace(manifest, samples=list(chosen))
    feats: dict = {}
    transcripts: dict[str, str] = {}
    if clue_mod.EGEMAPS in names:
        ensure_features(scope, [clue_mod.EGEMAPS], cache_dir, workers=cfg.features.workers, log=log)
        feats.update(load_features(scope, [clue_mod.EGEMAPS], cache_dir))
    if clue_mod.FER in names and any(s.video or s.image for s in chosen):
        ensure_features(only_chosen, [clue_mod.FER], cache_dir, workers=cfg.features.workers, log=log)
        feats.update(load_features(only_chosen, [clue_mod.FER], cache_dir))
    if clue_mod.ASR in names and any(not s.text and (s.audio or s.video) for s in chosen):
        ensure_features(only_chosen, [clue_mod.ASR], cache_dir, workers=cfg.features.workers, log=log)
        transcripts = load_transcripts(only_chosen, cache_dir)
    found = clue_mod.gather(speakers, feats, transcripts, captions, ins.baseline, ins.min_baseline)
    return {i: c for i, c in found.items() if i in chosen_ids}


# -- the run --------------------------------------------------------------------------------------------

def check_endpoint(llm: LLMConfig, seed: int = 0) -> str:
    """The model to use, after one look at the endpoint (EmotuneError naming the URL when it cannot serve)."""
    from emotune.instruct.llm_client import LLMClient

    async def look() -> str:
        async with LLMClient(llm.resolved_base_url(), llm.resolved_model(), llm.api_key(), 1, llm.timeout_s,
                             llm.retries, llm.backoff_s, llm.max_backoff_s, seed=seed) as client:
            return await client.check()

    return asyncio.run(look())


def plan_jobs(cfg: InstructRecipe, chosen: list[tuple[Sample, str]], output: Path) -> tuple[list[Job], Counter]:
    """The records still to make, from the files as they are (read only: nothing is created yet)."""
    ins = cfg.instruct
    done = read_ids(output)
    final = set() if ins.retry_rejected else read_ids(rejected_path(output))
    counts: Counter = Counter()
    jobs: list[Job] = []
    for s, gold in chosen:
        for kind in ins.kinds:
            rid = record_id(s.id, kind)
            if rid in done:
                counts["already_written"] += 1
            elif rid in final:
                counts["already_rejected"] += 1
            else:
                jobs.append(Job(rid, kind, s, gold))
    return jobs, counts


def run_instruct(cfg: InstructRecipe, progress: bool = True, log: Callable[[str], None] = _stderr) -> dict:
    """Write what the output lacks; returns this run's counts, plus `in_file` and the all-runs `totals`."""
    from emotune.experiments.run import ensure_manifest

    ins = cfg.instruct
    t0 = time.time()
    prompts = load_prompts(ins.prompts_dir)
    model = None
    if any(k in LLM_KINDS for k in ins.kinds) and not Path(cfg.data.manifest_path()).exists():
        model = check_endpoint(ins.llm, cfg.seed)  # before preparing the manifest, the first file this run writes
    manifest = ensure_manifest(cfg)  # reads only cfg.data
    labels = load_label_set(cfg.data.label_set or manifest.label_set, cfg.data.subset)
    chosen, dropped = select_samples(cfg, manifest, labels)
    for why, n in dropped.items():
        log(f"instruct: {n} sample(s) left out: {why}")
    output = ins.output_path(cfg.data.dataset)
    history = RunStats(output)  # a broken stats file stops the run here, before anything is written
    jobs, counts = plan_jobs(cfg, chosen, output)
    llm_jobs = [j for j in jobs if j.kind in LLM_KINDS]
    if llm_jobs and model is None:
        model = check_endpoint(ins.llm, cfg.seed)
    log(f"instruct: {len(chosen)} sample(s) x {len(ins.kinds)} kind(s): {len(jobs)} record(s) to write, "
        f"{counts['already_written']} already written, {counts['already_rejected']} rejected before -> {output}")
    written: Counter = Counter()
    filtered: Counter = Counter()
    skipped: Counter = Counter()
    llm_stats: dict = {}

    def entry() -> dict:
        return {"samples": len(chosen), "kinds": list(ins.kinds), "records_planned": len(chosen) * len(ins.kinds),
                "already_written": counts["already_written"], "already_rejected": counts["already_rejected"],
                "written": dict(written), "filtered": dict(filtered), "skipped": dict(skipped),
                "unusable_replies": {k[len("unusable_"):]: v for k, v in counts.items() if k.startswith("unusable_")},
                "llm": dict(llm_stats), "seconds": round(time.time() - t0, 1)}

    writer = JsonlAppender(output)
    rejects = JsonlAppender(rejected_path(output), unique=False)
    history.start(entry(), writer.records_by)

    def tick(now_llm: dict) -> None:  # after each LLM record: a killed run keeps its counts up to here
        llm_stats.update(now_llm)
        history.entry.update(entry())
        history.save(writer.records_by)

    status = "finished"
    try:
        wants_asr = clue_mod.ASR in ins.clues and any(not j.sample.text and (j.sample.audio or j.sample.video)
                                                      for j in jobs)
        found: dict[str, clue_mod.Clues] = {}
        if llm_jobs or wants_asr:
            samples = list({j.sample.id: j.sample for j in jobs}.values())
            found = load_clues(cfg, manifest, samples, prompts["captions"], list(ins.clues) if llm_jobs else [clue_mod.ASR],
                               log)
        for j in jobs:  # the transcript every kind shows the model: the dataset's, else Whisper's
            c = found.get(j.sample.id)
            if c is not None and c.transcript and not j.sample.text:
                j.sample = dataclasses.replace(j.sample, text=c.transcript)
        for job in [j for j in jobs if j.kind == "categorical"]:
            writer.append(categorical_record(job, prompts, labels, cfg.seed, ins.include_transcript))
            written["categorical"] += 1
        if llm_jobs:
            ready = []
            for j in llm_jobs:
                c = found.get(j.sample.id)
                if c is None or c.is_empty():
                    skipped["no_clues"] += 1
                    continue
                j.caption, j.clues = clue_mod.caption(c, prompts["captions"]), c
                ready.append(j)
            llm_stats.update(asyncio.run(_run_llm(ready, cfg, model, prompts, labels, writer, rejects, written,
                                                  filtered, skipped, counts, progress, log, tick)))
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException as exc:
        status = f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        raise
    finally:
        writer.close()
        rejects.close()
        history.entry.update(entry(), status=status)
        history.save(writer.records_by, force=True)
    return {**history.entry, "output": str(output), "in_file": dict(writer.records_by), "totals": history.totals}


async def _run_llm(jobs: list[Job], cfg: InstructRecipe, model: str, prompts: dict, labels: LabelSet,
                   writer: JsonlAppender, rejects: JsonlAppender, written: Counter, filtered: Counter,
                   skipped: Counter, counts: Counter, progress: bool, log: Callable[[str], None],
                   tick: Callable[[dict], None] = lambda llm: None) -> dict:
    from tqdm import tqdm

    from emotune.instruct.llm_client import LLMClient

    llm = cfg.instruct.llm
    client = LLMClient(llm.resolved_base_url(), model, llm.api_key(), llm.concurrency, llm.timeout_s,
                       llm.retries, llm.backoff_s, llm.max_backoff_s, seed=cfg.seed)

    def llm_stats() -> dict:
        return {"model": model, "base_url": client.base_url, **dict(client.counts),
                "prompt_tokens": client.prompt_tokens, "completion_tokens": client.completion_tokens}

    async with client:
        log(f"instruct: LLM '{model}' at {client.base_url}, {llm.concurrency} request(s) in flight")
        maker = LLMWriter(client, cfg, prompts, labels, counts)
        queue: asyncio.Queue[Job] = asyncio.Queue()
        for j in jobs:
            queue.put_nowait(j)
        bar = tqdm(total=len(jobs), unit="record", desc="instruct", disable=not progress, dynamic_ncols=True,
                   file=sys.stderr)

        def show() -> None:
            bar.set_postfix(ok=sum(written.values()), filtered=sum(filtered.values()), skipped=sum(skipped.values()),
                            tokens=client.prompt_tokens + client.completion_tokens, refresh=False)

        async def worker() -> None:
            while True:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    record = await getattr(maker, job.kind)(job)
                    writer.append(record)
                    written[job.kind] += 1
                except Filtered as f:
                    filtered[f.reason] += 1
                    rejects.append({"id": job.record_id, "reason": f.reason, "label": job.label, "texts": f.texts})
                except Skipped as s:
                    skipped[s.reason] += 1
                bar.update(1)
                show()
                tick(llm_stats())

        tasks = [asyncio.create_task(worker()) for _ in range(min(llm.concurrency, len(jobs)) or 1)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            bar.close()
            tick(llm_stats())  # also when the run stops on an error: its tokens were spent
    return llm_stats()
