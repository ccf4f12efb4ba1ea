"""Text generation for the HTTP API: one worker thread owns the model and batches waiting requests.

Requests arrive on the event loop; generation runs on the CPU in a single dedicated thread so the loop
keeps answering (health checks, 503s, 413s) while the model works. Whatever has queued up while the
previous batch ran is generated together in one left-padded `generate` call: on a CPU a batch of 16 short
prompts costs little more per step than one, so throughput under concurrent load grows with the batch.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
import threading
from typing import Optional


@dataclasses.dataclass
class GenRequest:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float  # 0 = greedy
    top_p: float
    stop: list[str]
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)

    def sampling_key(self) -> tuple:
        """Requests generated in one batch must share the decoding settings."""
        if self.temperature <= 0:
            return ("greedy",)
        return ("sample", round(self.temperature, 4), round(self.top_p, 4))


@dataclasses.dataclass
class GenResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn or a stop string) | "length" (max_tokens reached)


class Generator:
    """Owns a causal LM and its tokenizer; `submit` returns a Future resolved by the worker thread."""

    def __init__(self, model, tokenizer, max_batch: int = 16, threads: Optional[int] = None):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max(1, max_batch)
        self.threads = threads
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.max_context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        self._queue: queue.Queue[Optional[GenRequest]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="emotune-generate", daemon=True)
        self._thread.start()

    # -- prompt side (called on the event loop; cheap) ----------------------------------------------------
    def encode_chat(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        return list(ids)

    def submit(self, req: GenRequest) -> concurrent.futures.Future:
        self._queue.put(req)
        return req.future

    def close(self) -> None:
        self._queue.put(None)

    # -- worker thread ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            groups: dict[tuple, list[GenRequest]] = {}
            for req in batch:
                groups.setdefault(req.sampling_key(), []).append(req)
            for group in groups.values():
                live = [r for r in group if r.future.set_running_or_notify_cancel()]
                if not live:
                    continue
                try:
                    results = self._generate(live)
                except Exception as exc:  # one bad batch must not kill the worker
                    for r in live:
                        r.future.set_exception(exc)
                    continue
                for r, res in zip(live, results):
                    r.future.set_result(res)

    def _generate(self, group: list[GenRequest]) -> list[GenResult]:
        import torch

        width = max(len(r.prompt_ids) for r in group)
        # Left padding keeps every prompt's last token at the same position, where generation starts.
        input_ids = torch.full((len(group), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(group), width), dtype=torch.long)
        for i, r in enumerate(group):
            n = len(r.prompt_ids)
            input_ids[i, width - n:] = torch.tensor(r.prompt_ids, dtype=torch.long)
            attention[i, width - n:] = 1
        max_new = max(r.max_tokens for r in group)
        first = group[0]
        kwargs = dict(max_new_tokens=max_new, pad_token_id=self.pad_id, eos_token_id=self.eos_ids)
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        results = []
        for i, r in enumerate(group):
            results.append(self._finish(out[i, width:].tolist(), r))
        return results

    def _finish(self, new_ids: list[int], req: GenRequest) -> GenResult:
        """Cut one row at its end-of-turn token, its own max_tokens and its stop strings."""
        reason = "length"
        kept = new_ids[: req.max_tokens]
        for j, tok in enumerate(kept):
            if tok in self.eos_ids:
                kept, reason = kept[:j], "stop"
                break
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        count = len(kept)
        if req.stop:
            cut = min((text.find(s) for s in req.stop if s and s in text), default=-1)
            if cut >= 0:
                text, reason = text[:cut], "stop"
                count = len(self.tokenizer.encode(text, add_special_tokens=False))
        return GenResult(text=text, prompt_tokens=len(req.prompt_ids), completion_tokens=count, finish_reason=reason)


def _eos_ids(model, tokenizer) -> list[int]:
    """Every token that ends the assistant's turn (generation config may list several)."""
    ids: list[int] = []
    gen = getattr(model, "generation_config", None)
    cfg_eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    for value in (cfg_eos, tokenizer.eos_token_id):
        if value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v not in ids:
                ids.append(int(v))
    if not ids:
        raise ValueError("the model defines no end-of-sequence token")
    return ids
