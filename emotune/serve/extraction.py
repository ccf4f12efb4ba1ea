"""The extraction step of a prediction, in this process or, for long clips, in a low-priority worker process.

Why a worker: extractors run one sample at a time each (their models and native libraries are not all
re-entrant), so in one process a 300-s upload would hold Whisper and openSMILE for minutes and every
short clip behind it would wait that long. Long clips therefore go to one spawned worker process with
its own extractors, at a lower CPU priority (nice), while short clips keep the in-process ones: a short
request never waits for a long one, and on a busy CPU the kernel serves the short one first. Only
features cross back; the model itself stays in the server process (an LM is never loaded twice).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from emotune.data.sample import Sample
from emotune.errors import EmotuneError

# What a modality's features are computed from, for messages.
SOURCE_OF = {"audio": "audio or video", "face": "video or image", "text": "text (or English speech)"}
WORKER_NICE = 10  # CFS weight ~10x below a normal thread: short requests get the CPU first


class LaneBusy(EmotuneError):
    """The long-clip worker already has as many clips as this server lets wait."""


class LaneFailed(EmotuneError):
    """The long-clip worker process died (killed, out of memory): the server's fault, not the input's."""


def extract_all(sample: Sample, root: Path, inputs: dict[str, list[str]], asr: bool,
                extract: Optional[Callable] = None) -> dict:
    """Transcript (given, or Whisper ASR when `asr`) and every input feature of one sample.

    Returns {"text", "text_source", "feats" {name: array | None}, "crops", "missing" {name: reason}}.
    """
    from emotune.features.store import extract_output

    extract = extract or extract_output
    missing: dict[str, str] = {}
    source = "given" if sample.text else None
    if asr and not sample.text and (sample.audio or sample.video):
        try:
            sample.text = str(extract("asr", sample, root).value).strip()
            source = "asr" if sample.text else None
            if not sample.text:
                missing["asr"] = "no speech recognised"
        except EmotuneError as exc:
            missing["asr"] = _reason(exc, "asr")
    feats: dict[str, Optional[np.ndarray]] = {}
    crops: dict[str, np.ndarray] = {}
    for modality, names in inputs.items():
        for name in names:
            feats[name] = None
            if not _has(modality, sample):
                missing[name] = f"no {SOURCE_OF.get(modality, modality)} given"
                continue
            try:
                out = extract(name, sample, root)
            except EmotuneError as exc:
                missing[name] = _reason(exc, name)
                continue
            feats[name] = np.asarray(out.value)
            crops.update(out.crops)
    return {"text": sample.text, "text_source": source, "feats": feats, "crops": crops, "missing": missing}


def _has(modality: str, sample: Sample) -> bool:
    if modality == "audio":
        return bool(sample.audio or sample.video)
    if modality == "face":
        return bool(sample.video or sample.image)
    if modality == "text":
        return bool(sample.text)
    return True


def _reason(exc: EmotuneError, name: str) -> str:
    """extract_output says '<name>: <file>: <reason>'; keep '<file>: <reason>'."""
    text = str(exc)
    return text[len(name) + 2:] if text.startswith(name + ": ") else text


class LongLane:
    """One worker process for long clips, started on first use, one clip at a time in arrival order;
    `max_pending` bounds the clips waiting or running there (the demo allows 1, so that a long clip never
    sits in one of its queue's few slots waiting for another).

    A plain process and pipe, not a ProcessPoolExecutor: its queues hold named semaphores that are
    reported as leaked whenever a signal stops the server, and a worker that holds both ends of its own
    queue never notices the server is gone. Here the worker exits when its pipe closes.
    """

    def __init__(self, max_pending: Optional[int] = None):
        self.max_pending = max_pending
        self.pending = 0
        self._turns = threading.Condition()
        self._next_ticket = self._serving = 0
        self._proc = self._conn = None
        self._state = threading.Lock()  # close() may come from another thread than the clip's

    def run(self, sample: Sample, root: Path, inputs: dict[str, list[str]], asr: bool) -> dict:
        with self._turns:
            if self.max_pending is not None and self.pending >= self.max_pending:
                raise LaneBusy("another long recording is being analysed; retry when it is done, "
                               "or send a shorter clip")
            self.pending += 1
            ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
            self._turns.wait_for(lambda: self._serving == ticket)  # first come, first served
        try:
            ok, payload = self._call((sample, root, inputs, asr))
        finally:
            with self._turns:
                self.pending -= 1
                self._serving += 1
                self._turns.notify_all()
        if not ok:
            raise payload
        return payload

    def _call(self, job) -> tuple[bool, object]:
        with self._state:
            if self._proc is None or not self._proc.is_alive():
                self._start()
            conn = self._conn
        try:
            conn.send(job)
            return conn.recv()
        except (EOFError, OSError):
            self._stop()  # the next long clip starts a fresh worker
            raise LaneFailed("the worker process extracting long clips stopped (out of memory?); "
                             "a fresh one starts with the next long clip") from None

    def _start(self) -> None:
        import multiprocessing

        # spawn, not fork: the server has threads (uvicorn, torch, the generator) that fork would copy mid-state.
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(theirs,), name="emotune-long-clips", daemon=True)
        self._proc.start()
        theirs.close()
        self._conn = ours

    def _stop(self) -> None:
        with self._state:
            proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def close(self) -> None:
        """Stop the worker now, even mid-clip: the server is stopping."""
        self._stop()


def _worker(conn) -> None:
    try:
        os.nice(WORKER_NICE)
    except OSError:  # not permitted somewhere: the worker still runs, only without the priority hint
        pass
    # tqdm (inside faster-whisper) would make a named semaphore, reported as leaked when the server
    # stops the worker mid-clip; a thread lock serves this single-process worker as well.
    try:
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())
    except ImportError:
        pass
    # A server killed outright (SIGKILL, OOM killer) closes the pipe, but a worker deep in a long clip
    # only reads it afterwards: this watch ends it within a second instead.
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the server closed the pipe or is gone
            return
        try:
            reply = (True, extract_all(*job))
        except Exception as exc:
            reply = (False, exc)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception:  # an exception that does not pickle: its message does
            error = reply[1]
            conn.send((False, RuntimeError(f"{type(error).__name__}: {error}")))


def _exit_with_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)
