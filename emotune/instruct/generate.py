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
a rerun also skips unless `instruct.retry_rejected`). Counts of this run go to `<output>.stats.json`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from emotune.data.labels import LabelSet, load_label_set
from emotune.data.sample import Manifest, Sample
from emotune.errors import EmotuneError
from emotune.instruct import clues as clue_mod
from emotune.instruct.config import InstructRecipe
from emotune.instruct.parse import Unusable, check_label, clean_answer, parse_qa
from emotune.instruct.templates import first_human_turn, fill, load_prompts, pick, pick_distinct, pool

LLM_KINDS = ("reasoning", "conversation")
FINAL_REJECTIONS = ("contradicts_label", "label_not_stated")  # the content was judged: asking again is waste


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the output files -----------------------------------------------------------------------------------

class JsonlAppender:
    """An append-only JSONL file of records with unique `id`s; each record is one write of one line."""

    def __init__(self, path: Path, unique: bool = True):
        self.path = Path(path)
        self.unique = unique  # False: appending a known id again is a no-op (the rejection log)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ids: set[str] = set()
        self.records_by: Counter = Counter()
        self._repair_and_scan()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair_and_scan(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            # A run killed mid-write leaves a partial last line: drop it (its record is redone).
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(keep)
            data = data[:keep]
        for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                rid = obj["id"]
            except (ValueError, KeyError, TypeError):
                raise EmotuneError(f"{self.path}:{lineno}: not a record of this tool (bad JSON or no id); "
                                   f"move the file away or choose another instruct.output") from None
            self.ids.add(rid)
            self.records_by[obj.get("kind") or obj.get("reason") or "?"] += 1

    def append(self, record: dict) -> None:
        if record["id"] in self.ids:
            if self.unique:
                raise RuntimeError(f"record {record['id']} written twice")
            return
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:  # a regular file takes the whole line at once; the loop only guards odd filesystems
            n = os.write(self._fd, view)
            view = view[n:]
        self.ids.add(record["id"])
        self.records_by[record.get("kind") or record.get("reason") or "?"] += 1

    def close(self) -> None:
        os.close(self._fd)


def rejected_path(output: Path) -> Path:
    return output.with_name(output.name + ".rejected.jsonl")


def stats_path(output: Path) -> Path:
    return output.with_name(output.name + ".stats.json")


# -- what to do -----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Job:
    record_id: str
    kind: str
    sample: Sample
    label: str
    caption: str = ""


class Skipped(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Filtered(Exception):
    def __init__(self, reason: str, texts: list[str]):
        super().__init__(reason)
        self.reason = reason
        self.texts = texts


def record_id(sample_id: str, kind: str) -> str:
    return f"{sample_id}/{kind}"


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


# -- records --------------------------------------------------------------------------------------------

def _base_record(job: Job) -> dict:
    s = job.sample
    return {"id": job.record_id, "sample_id": s.id, "dataset": s.dataset, "kind": job.kind, "label": job.label,
            "audio": s.audio, "video": s.video, "image": s.image}


def categorical_record(job: Job, prompts: dict, labels: LabelSet, seed: int, include_transcript: bool) -> dict:
    spec = prompts["categorical"]
    question = fill(pick(pool(spec["questions"], job.sample, "categorical.questions"), seed, job.record_id, "question"),
                    options=", ".join(labels.names))
    answer = fill(pick(pool(spec["answers"], job.sample, "categorical.answers"), seed, job.record_id, "answer"),
                  label=job.label)
    return {**_base_record(job), "conversations": [
        {"from": "human", "value": first_human_turn(job.sample, question, prompts["turns"], include_transcript)},
        {"from": "gpt", "value": answer}]}


class LLMWriter:
    """Runs the LLM-written kinds: asks, reads, retries unusable replies, checks the label."""

    def __init__(self, client, cfg: InstructRecipe, prompts: dict, labels: LabelSet, counts: Counter):
        self.client = client
        self.cfg = cfg
        self.ins = cfg.instruct
        self.prompts = prompts
        self.labels = labels
        self.counts = counts

    def _hint(self, spec: dict, job: Job) -> str:
        return fill(spec["label_hint"], label=job.label) if self.ins.reveal_label else ""

    async def _ask(self, messages: list[dict], read: Callable, usage: Counter):
        """One reply read by `read(text, truncated)`; unusable replies are asked again, then Skipped."""
        from emotune.instruct.llm_client import LLMFailed

        llm = self.ins.llm
        for _ in range(self.ins.parse_retries + 1):
            try:
                reply = await self.client.chat(messages, llm.max_tokens, llm.temperature, llm.top_p)
            except LLMFailed as exc:
                raise Skipped("llm_failed") from exc
            usage["prompt_tokens"] += reply.prompt_tokens
            usage["completion_tokens"] += reply.completion_tokens
            try:
                return read(reply.text, reply.finish_reason == "length")
            except Unusable as u:
                self.counts[f"unusable_{u.reason}"] += 1
        raise Skipped("unparseable")

    def _record(self, job: Job, pairs: list[tuple[str, str]], usage: Counter) -> dict:
        turns = []
        for i, (q, a) in enumerate(pairs):
            human = first_human_turn(job.sample, q, self.prompts["turns"], self.ins.include_transcript) if i == 0 else q
            turns += [{"from": "human", "value": human}, {"from": "gpt", "value": a}]
        return {**_base_record(job), "conversations": turns, "caption": job.caption,
                "llm": {"model": self.client.model, **usage}}

    def _check(self, job: Job, answers: list[str]) -> None:
        reason = check_label(answers, job.label, self.labels, self.ins.label_check)
        if reason:
            raise Filtered(reason, answers)

    async def reasoning(self, job: Job) -> dict:
        spec = self.prompts["reasoning"]
        seed = self.cfg.seed
        usage: Counter = Counter()
        system = {"role": "system", "content": spec["system"]}
        if spec["format"] == "answer":
            question = pick(pool(spec["questions"], job.sample, "reasoning.questions"), seed, job.record_id, "question")
            user = fill(spec["user"], caption=job.caption, label_hint=self._hint(spec, job), question=question)
            answer = await self._ask([system, {"role": "user", "content": user}],
                                     lambda text, cut: clean_answer(text, truncated=cut), usage)
            pairs = [(question, answer)]
        else:
            user = fill(spec["user_qa"], caption=job.caption, label_hint=self._hint(spec, job))
            found = await self._ask([system, {"role": "user", "content": user}],
                                    lambda text, cut: parse_qa(text, 1, truncated=cut), usage)
            pairs = found[:1]
        self._check(job, [a for _, a in pairs])
        return self._record(job, pairs, usage)

    async def conversation(self, job: Job) -> dict:
        spec = self.prompts["conversation"]
        seed = self.cfg.seed
        usage: Counter = Counter()
        system = {"role": "system", "content": fill(spec["system"], caption=job.caption, label_hint=self._hint(spec, job))}
        n_simple, n_complex = self.ins.simple_questions, self.ins.complex_questions
        if spec["format"] == "turns":
            questions = (pick_distinct(pool(spec["simple_questions"], job.sample, "conversation.simple_questions"),
                                       n_simple, seed, job.record_id, "simple")
                         + pick_distinct(pool(spec["complex_questions"], job.sample, "conversation.complex_questions"),
                                         n_complex, seed, job.record_id, "complex"))
            messages = [system]
            pairs = []
            for q in questions:
                messages.append({"role": "user", "content": q})
                a = await self._ask(list(messages), lambda text, cut: clean_answer(text, truncated=cut), usage)
                self._check(job, [a])  # a contradiction ends the conversation before more is asked
                messages.append({"role": "assistant", "content": a})
                pairs.append((q, a))
        else:
            n = n_simple + n_complex
            user = fill(spec["user_qa"], n=n)
            pairs = await self._ask([system, {"role": "user", "content": user}],
                                    lambda text, cut: parse_qa(text, min(2, n), truncated=cut), usage)
        self._check(job, [a for _, a in pairs])
        return self._record(job, pairs, usage)


# -- the run --------------------------------------------------------------------------------------------

def run_instruct(cfg: InstructRecipe, progress: bool = True, log: Callable[[str], None] = _stderr) -> dict:
    from emotune.experiments.run import ensure_manifest

    ins = cfg.instruct
    t0 = time.time()
    prompts = load_prompts(ins.prompts_dir)
    manifest = ensure_manifest(cfg)  # reads only cfg.data
    labels = load_label_set(cfg.data.label_set or manifest.label_set, cfg.data.subset)
    chosen, dropped = select_samples(cfg, manifest, labels)
    for why, n in dropped.items():
        log(f"instruct: {n} sample(s) left out: {why}")
    output = ins.output_path(cfg.data.dataset)
    writer = JsonlAppender(output)
    rejects = JsonlAppender(rejected_path(output), unique=False)
    try:
        final = set() if ins.retry_rejected else {rid for rid in rejects.ids}
        counts: Counter = Counter()
        jobs: list[Job] = []
        for s, gold in chosen:
            for kind in ins.kinds:
                rid = record_id(s.id, kind)
                if rid in writer.ids:
                    counts["already_written"] += 1
                elif rid in final:
                    counts["already_rejected"] += 1
                else:
                    jobs.append(Job(rid, kind, s, gold))
        log(f"instruct: {len(chosen)} sample(s) x {len(ins.kinds)} kind(s): {len(jobs)} record(s) to write, "
            f"{counts['already_written']} already written, {counts['already_rejected']} rejected before -> {output}")
        written: Counter = Counter()
        filtered: Counter = Counter()
        skipped: Counter = Counter()
        llm_stats: dict = {}
        llm_jobs = [j for j in jobs if j.kind in LLM_KINDS]
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
                j.caption = clue_mod.caption(c, prompts["captions"])
                ready.append(j)
            llm_stats = asyncio.run(_run_llm(ready, cfg, prompts, labels, writer, rejects, written, filtered,
                                             skipped, counts, progress, log))
    finally:
        writer.close()
        rejects.close()
    stats = {
        "output": str(output), "samples": len(chosen), "kinds": list(ins.kinds),
        "records_planned": len(chosen) * len(ins.kinds), "already_written": counts["already_written"],
        "already_rejected": counts["already_rejected"], "written": dict(written), "filtered": dict(filtered),
        "skipped": dict(skipped),
        "unusable_replies": {k[len("unusable_"):]: v for k, v in counts.items() if k.startswith("unusable_")},
        "llm": llm_stats, "in_file": dict(writer.records_by), "seconds": round(time.time() - t0, 1),
    }
    tmp = stats_path(output).with_suffix(".tmp")
    tmp.write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, stats_path(output))
    return stats


async def _run_llm(jobs: list[Job], cfg: InstructRecipe, prompts: dict, labels: LabelSet, writer: JsonlAppender,
                   rejects: JsonlAppender, written: Counter, filtered: Counter, skipped: Counter, counts: Counter,
                   progress: bool, log: Callable[[str], None]) -> dict:
    from tqdm import tqdm

    from emotune.instruct.llm_client import LLMClient

    llm = cfg.instruct.llm
    client = LLMClient(llm.resolved_base_url(), llm.resolved_model(), llm.api_key(), llm.concurrency, llm.timeout_s,
                       llm.retries, llm.backoff_s, llm.max_backoff_s, seed=cfg.seed)
    async with client:
        model = await client.check()
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

        tasks = [asyncio.create_task(worker()) for _ in range(min(llm.concurrency, len(jobs)) or 1)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            bar.close()
    return {"model": model, "base_url": client.base_url, **dict(client.counts),
            "prompt_tokens": client.prompt_tokens, "completion_tokens": client.completion_tokens}
