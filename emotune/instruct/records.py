"""The records of `emotune instruct`: what to make (Job), the templated categorical record and the
LLM-written kinds (reasoning, conversation), with retries of unusable replies and the label check."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING, Callable, Optional

from emotune.data.labels import LabelSet
from emotune.data.sample import Sample
from emotune.instruct.config import InstructRecipe
from emotune.instruct.grounding import check_grounding
from emotune.instruct.parse import Unusable, check_label, clean_answer, parse_qa

if TYPE_CHECKING:
    from emotune.instruct.clues import Clues
from emotune.instruct.templates import first_human_turn, fill, pick, pick_distinct, pool


# -- what to make -----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Job:
    record_id: str
    kind: str
    sample: Sample
    label: str
    caption: str = ""
    clues: Optional["Clues"] = None  # what the caption was made from: the grounding check reads it


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
        if not reason and self.ins.grounding:
            reason = next((r for r in (check_grounding(a, job.clues, job.sample.text or "", job.caption) for a in answers)
                           if r), None)
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
