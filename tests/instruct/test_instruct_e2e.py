"""`emotune instruct` on RAVDESS clips through `emotune serve` on loopback (both real processes).

Kept short on purpose: 4 clips, replies of at most 24 tokens, conversations of two questions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.instruct.conftest import pick_ids
from tests.serve.llm_servers import FAULT_KEY, llm_servers  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.data]


def _recipe(tmp: Path, actor01: dict, ids: list[str], **instruct) -> Path:
    recipe = {
        "name": "instruct_test",
        "data": {"dataset": "ravdess", "root": str(actor01["root"]), "manifest": str(actor01["manifest"])},
        "features": {"cache_dir": str(actor01["cache"])},
        "instruct": {"output": str(tmp / "out.jsonl"), "ids": ids, "simple_questions": 1, "complex_questions": 1,
                     "llm": {"concurrency": 4, "max_tokens": 24, "timeout_s": 120, "retries": 3, "backoff_s": 0.2},
                     **instruct},
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _instruct_cmd(recipe: Path) -> list[str]:
    return [sys.executable, "-m", "emotune.cli", "instruct", str(recipe), "--no-progress"]


@pytest.mark.faults
def test_all_kinds_survive_sigkill_and_resume(tmp_path, actor01, llm_servers):
    ids = pick_ids(actor01["samples"])
    assert len(ids) == 4
    # Every kind must end up in the file; the grounding rules reject about half of this small model's sampled
    # replies (RESULTS.md), which would leave a kind empty in a few runs in a hundred. They have their own tests;
    # the label check stays on, so rejected records are still counted across the kill.
    recipe = _recipe(tmp_path, actor01, ids, grounding=False)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "EMOTUNE_LLM_BASE_URL": llm_servers["clean"]["base_url"], "OMP_NUM_THREADS": "1"}
    env.pop("EMOTUNE_LLM_MODEL", None)

    # First run: killed as soon as one LLM-written record is in the file (others are in flight).
    with open(tmp_path / "run1.log", "wb") as log:
        proc = subprocess.Popen(_instruct_cmd(recipe), stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 240
    while True:
        kinds = Counter(r["kind"] for r in _records(out)) if out.exists() and out.read_text().endswith("\n") else Counter()
        if kinds["reasoning"] + kinds["conversation"] >= 1:
            break
        if proc.poll() is not None:
            pytest.fail(f"instruct ended before it could be killed:\n{(tmp_path / 'run1.log').read_text()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"no LLM record within 240 s:\n{(tmp_path / 'run1.log').read_text()[-3000:]}")
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = [r["id"] for r in _records(out)]
    assert len(first) == len(set(first)) and len(first) < 12
    rejected_first = [r["id"] for r in _records(out.with_name(out.name + ".rejected.jsonl"))]

    # Second run: finishes the rest.
    done = subprocess.run(_instruct_cmd(recipe), capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    stats = json.loads(out.with_name(out.name + ".stats.json").read_text())

    records = _records(out)
    final = [r["id"] for r in records]
    assert len(final) == len(set(final)), "an id was written twice"
    assert set(first) <= set(final), "a record of the killed run was lost"
    # One entry per run: the killed one (its counts as of its last save), then this one; totals add them.
    assert len(stats["runs"]) == 2 and stats["runs"][0]["status"].startswith("killed")
    assert stats["runs"][1]["status"] == "finished"
    this = stats["runs"][1]
    assert this["already_written"] == len(first) and this["already_rejected"] == len(set(rejected_first))
    accounted = (this["already_written"] + this["already_rejected"] + sum(this["written"].values())
                 + sum(this["filtered"].values()) + sum(this["skipped"].values()))
    assert accounted == this["records_planned"] == 12
    for key in ("prompt_tokens", "completion_tokens"):
        assert stats["totals"]["llm"][key] == sum(r["llm"].get(key, 0) for r in stats["runs"])
        assert summary["tokens_all_runs"][key] == stats["totals"]["llm"][key] >= this["llm"][key]
    assert stats["totals"]["written"] == {k: sum(r["written"].get(k, 0) for r in stats["runs"])
                                          for k in stats["totals"]["written"]}
    assert stats["in_file"] == dict(Counter(r["kind"] for r in _records(out)))
    assert summary["in_file"] == dict(Counter(r["kind"] for r in records))
    rejected = {r["id"] for r in _records(out.with_name(out.name + ".rejected.jsonl"))}
    missing = {f"{i}/{k}" for i in ids for k in ("categorical", "reasoning", "conversation")} - set(final)
    assert missing <= rejected | {f"{i}/{k}" for i in ids for k in ("reasoning", "conversation")}
    assert this["llm"]["completion_tokens"] > 0 and this["llm"]["prompt_tokens"] > 0

    # Every kind is there, in the LLaVA layout, joinable to the manifest.
    assert {r["kind"] for r in records} == {"categorical", "reasoning", "conversation"}
    by_id = {s.id: s for s in actor01["samples"]}
    for r in records:
        s = by_id[r["sample_id"]]
        assert r["label"] == s.label and r["audio"] == s.audio and (Path(actor01["root"]) / r["audio"]).exists()
        turns = r["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) and turns
        assert turns[0]["value"].startswith("<audio>\nThe person says: ")
        assert all(t["value"].strip() for t in turns)
        if r["kind"] == "conversation":
            assert len(turns) == 4
        if r["kind"] != "categorical":
            assert "Compared with their own other recordings" in r["caption"] or "close to their own" in r["caption"]
            assert r["llm"]["model"] == "smollm2-135m-instruct"


@pytest.mark.faults
def test_faults_are_retried_counted_and_passed(tmp_path, actor01, llm_servers, monkeypatch):
    """Against the server's fault cycle (500, empty, malformed JSON, too slow, ok): the run goes on."""
    from emotune.instruct.config import load_instruct_config
    from emotune.instruct.generate import run_instruct

    ids = pick_ids(actor01["samples"])[:2]
    # What is under test is the transport: greedy replies, and the content filters off, so that whether a
    # reply is written never hangs on what a sampled 12-token reply happens to say (it once failed both).
    recipe = _recipe(tmp_path, actor01, ids, kinds=["reasoning"], parse_retries=2, label_check="off", grounding=False,
                     llm={"concurrency": 1, "max_tokens": 12, "timeout_s": 8, "retries": 4, "backoff_s": 0.05,
                          "temperature": 0.0})
    monkeypatch.setenv("EMOTUNE_LLM_BASE_URL", llm_servers["faulty"]["base_url"])
    monkeypatch.setenv("EMOTUNE_LLM_API_KEY", FAULT_KEY)  # the key comes from the environment only
    stats = run_instruct(load_instruct_config(recipe), progress=False, log=lambda *a: None)
    llm = stats["llm"]
    assert llm["http_500"] >= 1 and llm["bad_responses"] >= 1 and llm["timeouts"] >= 1
    assert stats["unusable_replies"].get("empty", 0) >= 1
    assert sum(stats["written"].values()) + sum(stats["filtered"].values()) + sum(stats["skipped"].values()) == 2
    assert sum(stats["written"].values()) >= 1


def test_a_model_the_server_does_not_have_stops_the_run_with_one_line(tmp_path, actor01, llm_servers):
    ids = pick_ids(actor01["samples"])[:1]
    recipe = _recipe(tmp_path, actor01, ids, kinds=["reasoning"], llm={"model": "gpt-4o"})
    env = {**os.environ, "EMOTUNE_LLM_BASE_URL": llm_servers["clean"]["base_url"]}
    done = subprocess.run(_instruct_cmd(recipe), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "HTTP 404 for model 'gpt-4o'" in last and "Traceback" not in done.stderr


def test_the_server_root_instead_of_its_api_is_named_before_anything_is_written(tmp_path, actor01, llm_servers):
    """The usual mistake: the base URL without /v1. One line with the fix; no file or folder made."""
    ids = pick_ids(actor01["samples"])[:1]
    recipe = _recipe(tmp_path, actor01, ids, output=str(tmp_path / "out" / "out.jsonl"))
    root = llm_servers["clean"]["base_url"].removesuffix("/v1")
    env = {**os.environ, "EMOTUNE_LLM_BASE_URL": root}
    env.pop("EMOTUNE_LLM_MODEL", None)
    done = subprocess.run(_instruct_cmd(recipe), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {root} is not an OpenAI-compatible endpoint") and f"try {root}/v1" in last
    assert not (tmp_path / "out").exists()
