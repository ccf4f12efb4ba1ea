"""The instruction file is append-only and resumable; recipes fail early with one clear line."""

from __future__ import annotations

import json

import pytest

from emotune.errors import EmotuneError
from emotune.instruct.config import load_instruct_config
from emotune.instruct.output import JsonlAppender


@pytest.mark.faults
def test_appender_repairs_a_torn_last_line_and_refuses_duplicates(tmp_path):
    path = tmp_path / "out.jsonl"
    w = JsonlAppender(path)
    w.append({"id": "a/categorical", "kind": "categorical"})
    w.append({"id": "b/reasoning", "kind": "reasoning"})
    w.close()
    with open(path, "ab") as f:  # what SIGKILL in the middle of a write can leave
        f.write(b'{"id": "c/reasoning", "kind": "reas')
    w = JsonlAppender(path)
    assert w.ids == {"a/categorical", "b/reasoning"}
    assert w.records_by == {"categorical": 1, "reasoning": 1}
    with pytest.raises(RuntimeError):
        w.append({"id": "a/categorical", "kind": "categorical"})
    w.append({"id": "c/reasoning", "kind": "reasoning"})
    w.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a/categorical", "b/reasoning", "c/reasoning"]


def test_appender_names_a_corrupt_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(EmotuneError, match=r"out.jsonl:2: not a record"):
        JsonlAppender(path)


def test_rejection_log_tolerates_a_second_rejection(tmp_path):
    w = JsonlAppender(tmp_path / "r.jsonl", unique=False)
    w.append({"id": "a/reasoning", "reason": "contradicts_label"})
    w.append({"id": "a/reasoning", "reason": "contradicts_label"})
    w.close()
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1


def _recipe(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_recipe_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(EmotuneError, match=r"unknown key 'instruct.llm.api_key'"):
        load_instruct_config(_recipe(tmp_path, "instruct:\n  llm:\n    api_key: sk-123\n"))
    with pytest.raises(EmotuneError, match=r"instruct.kinds\[0\]: must be one of"):
        load_instruct_config(_recipe(tmp_path, "instruct:\n  kinds: [essay]\n"))
    with pytest.raises(EmotuneError, match=r"instruct.llm: concurrency"):
        load_instruct_config(_recipe(tmp_path, "instruct:\n  llm: {concurrency: 0}\n"))
    with pytest.raises(EmotuneError, match=r"unknown key 'instruct.nope'.*command line"):
        load_instruct_config(_recipe(tmp_path, "name: x\n"), ["instruct.nope=1"])
    cfg = load_instruct_config(_recipe(tmp_path, "name: x\n"), ["instruct.limit=3", "instruct.llm.concurrency=2"])
    assert cfg.instruct.limit == 3 and cfg.instruct.llm.concurrency == 2
    monkeypatch.delenv("EMOTUNE_LLM_BASE_URL", raising=False)
    with pytest.raises(EmotuneError, match="EMOTUNE_LLM_BASE_URL"):
        cfg.instruct.llm.resolved_base_url()
    monkeypatch.setenv("EMOTUNE_LLM_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("EMOTUNE_LLM_API_KEY", "from-env")
    assert cfg.instruct.llm.resolved_base_url() == "http://127.0.0.1:9/v1"
    assert cfg.instruct.llm.api_key() == "from-env"


def test_the_shipped_recipe_loads():
    cfg = load_instruct_config("configs/instruct_ravdess.yaml")
    assert cfg.instruct.kinds == ["categorical", "reasoning", "conversation"]
    assert cfg.instruct.output_path(cfg.data.dataset).name == "ravdess.jsonl"


@pytest.mark.data
def test_unreachable_endpoint_is_a_clear_error(tmp_path, actor01):
    """Nothing listens on the port: the run stops at once, before writing anything (not even the templated
    records, which need no endpoint: a run that cannot finish should not leave half an output)."""
    from emotune.instruct.generate import run_instruct
    from tests.instruct.conftest import pick_ids

    ids = pick_ids(actor01["samples"])[:2]
    cfg = load_instruct_config(_recipe(tmp_path, "name: x\n"), [
        f"data.manifest={actor01['manifest']}", f"data.root={actor01['root']}", f"features.cache_dir={actor01['cache']}",
        f"instruct.output={tmp_path / 'out' / 'out.jsonl'}", f"instruct.ids=[{','.join(ids)}]",
        "instruct.llm.base_url=http://127.0.0.1:9/v1", "instruct.llm.timeout_s=5"])
    with pytest.raises(EmotuneError, match="cannot reach the LLM endpoint http://127.0.0.1:9/v1"):
        run_instruct(cfg, progress=False, log=lambda *a: None)
    assert not (tmp_path / "out").exists()

