"""`emotune instruct` as a real process: the endpoint is checked before anything is written, and the
stats file keeps every run's counts and their totals. No dataset needed: a CSV of sentences is the corpus."""

from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.instruct.conftest import table_recipe, text_table  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def _instruct(recipe: Path, *args: str, base_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOTUNE_LLM_")}
    if base_url:
        env["EMOTUNE_LLM_BASE_URL"] = base_url
    return subprocess.run([sys.executable, "-m", "emotune.cli", "instruct", str(recipe), *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def plain_web_server(tmp_path):
    """A real HTTP server that is not an OpenAI API: Python's static file server (GET 404 / POST 501)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>a web page</html>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_overrides_after_a_flag_apply_and_the_stats_add_up_over_runs(tmp_path, text_table):  # noqa: F811
    """Three runs on one output (2 records, the other 4, nothing): each run its own counts, totals summed."""
    out = tmp_path / "out" / "table.jsonl"
    recipe = table_recipe(tmp_path, text_table, out, kinds=["reasoning"])
    # kinds and limit come after --no-progress; a categorical-only run needs no endpoint at all
    first = _instruct(recipe, "instruct.llm.timeout_s=5", "--no-progress", "instruct.kinds=[categorical]",
                      "instruct.limit=2")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1])["written"] == {"categorical": 2}
    second = _instruct(recipe, "--no-progress", "instruct.kinds=[categorical]")
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout.splitlines()[-1])
    assert summary["written"] == {"categorical": 4} and summary["already_written"] == 2
    assert _instruct(recipe, "instruct.kinds=[categorical]", "--no-progress").returncode == 0

    stats = json.loads(out.with_name("table.jsonl.stats.json").read_text())
    assert [r["written"].get("categorical", 0) for r in stats["runs"]] == [2, 4, 0]
    assert [r["already_written"] for r in stats["runs"]] == [0, 2, 6]
    assert [r["status"] for r in stats["runs"]] == ["finished"] * 3
    assert stats["totals"]["written"] == {"categorical": 6} and stats["totals"]["runs"] == 3
    assert stats["in_file"] == {"categorical": 6}
    assert "runs:" in stats["about"] and "totals:" in stats["about"]
    assert len(out.read_text().splitlines()) == 6


def test_a_stats_file_of_the_earlier_layout_becomes_the_first_run(tmp_path, text_table):  # noqa: F811
    out = tmp_path / "out" / "table.jsonl"
    recipe = table_recipe(tmp_path, text_table, out, kinds=["categorical"], limit=3)
    assert _instruct(recipe, "--no-progress").returncode == 0
    # What an earlier version wrote: one run's counts at top level (and the LLM's tokens).
    old = {"output": str(out), "samples": 3, "kinds": ["categorical"], "records_planned": 3, "already_written": 0,
           "already_rejected": 0, "written": {"categorical": 3}, "filtered": {}, "skipped": {},
           "unusable_replies": {}, "llm": {"prompt_tokens": 100, "completion_tokens": 40},
           "in_file": {"categorical": 3}, "seconds": 1.5}
    out.with_name("table.jsonl.stats.json").write_text(json.dumps(old))
    done = _instruct(recipe, "--no-progress", "instruct.limit=5")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["tokens_all_runs"] == {"prompt_tokens": 100,
                                                                          "completion_tokens": 40}
    stats = json.loads(out.with_name("table.jsonl.stats.json").read_text())
    assert len(stats["runs"]) == 2 and "earlier version" in stats["runs"][0]["status"]
    assert stats["totals"]["written"] == {"categorical": 5}
    assert stats["totals"]["llm"] == {"prompt_tokens": 100, "completion_tokens": 40}


def test_a_broken_stats_file_stops_the_run_before_it_writes(tmp_path, text_table):  # noqa: F811
    out = tmp_path / "out" / "table.jsonl"
    stats = out.with_name("table.jsonl.stats.json")
    stats.parent.mkdir()
    stats.write_text("{ not json")
    done = _instruct(table_recipe(tmp_path, text_table, out, kinds=["categorical"]), "--no-progress")
    line = _one_error_line(done)
    assert str(stats) in line and "move it away" in line
    assert not out.exists() and stats.read_text() == "{ not json"


@pytest.mark.parametrize("manifest_exists", [True, False], ids=["manifest_ready", "manifest_to_prepare"])
def test_an_unreachable_endpoint_stops_the_run_before_anything_is_written(tmp_path, text_table,  # noqa: F811
                                                                          manifest_exists):
    out_dir = tmp_path / "instruct_out"
    recipe = table_recipe(tmp_path, text_table, out_dir / "table.jsonl", kinds=["categorical", "reasoning"])
    args = ["--no-progress", "instruct.llm.retries=0"]
    new_manifest = tmp_path / "manifests" / "table.jsonl"
    if not manifest_exists:  # the manifest would be prepared first: not even that happens
        args.append(f"data.manifest={new_manifest}")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    line = _one_error_line(_instruct(recipe, *args, base_url=url))
    assert f"cannot reach the LLM endpoint {url}" in line
    assert not out_dir.exists()
    assert not new_manifest.parent.exists()


def test_a_web_server_that_is_not_an_openai_api_is_named_before_anything_is_written(tmp_path, text_table,  # noqa: F811
                                                                                    plain_web_server):
    out_dir = tmp_path / "instruct_out"
    recipe = table_recipe(tmp_path, text_table, out_dir / "table.jsonl", kinds=["reasoning"])
    # No model named: the model list is all there is to go by.
    line = _one_error_line(_instruct(recipe, "--no-progress", base_url=plain_web_server))
    assert f"{plain_web_server} is not an OpenAI-compatible endpoint" in line
    assert "GET " + plain_web_server + "/models answered HTTP 404" in line
    assert f"try {plain_web_server}/v1" in line
    # A model named: one chat request is tried too (the static server answers POST with 501).
    line = _one_error_line(_instruct(recipe, "--no-progress", "instruct.llm.model=some-model",
                                     "instruct.llm.retries=0", base_url=plain_web_server + "/v1"))
    assert f"{plain_web_server}/v1 is not an OpenAI-compatible endpoint" in line
    assert "POST /chat/completions failed (http 501" in line and "try " not in line
    assert not out_dir.exists()
