"""`emotune serve` through the official `openai` client, as any user of an OpenAI-compatible API would."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import urllib.request

import httpx
import pytest

from tests.serve.llm_servers import FAULT_KEY, MAX_REQUEST_KB, SLOW_S, llm_servers  # noqa: F401

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m-instruct"


def _client(base_url: str, key: str = "unused", **kw):
    import openai

    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120, **kw)


def test_models_and_one_completion(llm_servers):
    client = _client(llm_servers["clean"]["base_url"])
    assert [m.id for m in client.models.list()] == [MODEL]
    r = client.chat.completions.create(model=MODEL, max_tokens=12, temperature=0,
                                       messages=[{"role": "system", "content": "You are terse."},
                                                 {"role": "user", "content": "Name one emotion."}])
    text = r.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # Greedy decoding is deterministic, also when streamed (the reply arrives as one chunk).
    chunks = list(client.chat.completions.create(model=MODEL, max_tokens=12, temperature=0, stream=True,
                                                 messages=[{"role": "system", "content": "You are terse."},
                                                           {"role": "user", "content": "Name one emotion."}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


def test_twenty_concurrent_requests_all_succeed(llm_servers):
    client = _client(llm_servers["clean"]["base_url"])
    topics = ["anger", "joy", "fear", "sadness", "surprise"]

    def ask(i: int):
        r = client.chat.completions.create(model=MODEL, max_tokens=8, temperature=0.7,
                                           messages=[{"role": "user", "content": f"One word about {topics[i % 5]} ({i})."}])
        return r.choices[0].message.content, r.usage.completion_tokens

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(ask, range(20)))
    assert len(results) == 20
    assert all(isinstance(text, str) and 0 < n <= 8 for text, n in results)


def test_bad_requests_get_clear_errors(llm_servers):
    import openai

    client = _client(llm_servers["clean"]["base_url"])
    with pytest.raises(openai.APIStatusError) as exc:  # oversized body
        client.chat.completions.create(model=MODEL, max_tokens=4,
                                       messages=[{"role": "user", "content": "x" * (MAX_REQUEST_KB * 1024 + 10)}])
    assert exc.value.status_code == 413
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="exceeds this server's limit"):
        client.chat.completions.create(model=MODEL, max_tokens=100000, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model=MODEL, max_tokens=4, messages=[])
    with pytest.raises(openai.BadRequestError, match="image_url"):
        client.chat.completions.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}])
    # A body that lies about its size (chunked, no Content-Length) is cut off at the limit too.
    big = (b'{"model": "%s", "messages": [{"role": "user", "content": "' % MODEL.encode()) + b"y" * (MAX_REQUEST_KB * 1024) + b'"}]}'
    r = httpx.post(llm_servers["clean"]["base_url"] + "/chat/completions", content=iter([big[:1000], big[1000:]]),
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    # The server is still healthy after all of that.
    with urllib.request.urlopen(llm_servers["clean"]["base_url"].replace("/v1", "/health"), timeout=10) as h:
        assert json.loads(h.read())["status"] == "ok"


def test_api_key_is_required_when_set(llm_servers):
    import openai

    base = llm_servers["faulty"]["base_url"]
    with pytest.raises(openai.AuthenticationError):
        _client(base, key="wrong").models.list()
    r = httpx.get(base + "/models", timeout=10)  # no Authorization header at all
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert [m.id for m in _client(base, key=FAULT_KEY).models.list()] == [MODEL]
    # /health answers without a key but tells nothing about the data
    with urllib.request.urlopen(base.replace("/v1", "/health"), timeout=10) as h:
        assert json.loads(h.read())["status"] == "ok"


@pytest.mark.faults
def test_llm_client_survives_every_fault(llm_servers):
    """500, empty reply, malformed JSON and a reply slower than the timeout: each retried and counted."""
    from emotune.instruct.llm_client import LLMClient

    async def run():
        client = LLMClient(llm_servers["faulty"]["base_url"], api_key=FAULT_KEY, concurrency=1, timeout_s=SLOW_S * 0.6,
                           retries=5, backoff_s=0.05, max_backoff_s=0.2)
        async with client:
            assert await client.check() == MODEL
            replies = []
            for _ in range(4):  # wherever the server's fault cycle stands, 4 calls pass through all of it
                replies.append(await client.chat([{"role": "user", "content": "Say yes."}], max_tokens=2, temperature=0))
            return client, replies

    client, replies = asyncio.run(run())
    assert any(r.text == "" for r in replies)  # the empty reply is returned; the caller decides it is unusable
    assert any(r.text.strip() for r in replies)
    assert client.counts["http_500"] >= 1
    assert client.counts["bad_responses"] >= 1
    assert client.counts["timeouts"] >= 1
    assert client.counts["retries"] == client.counts["http_500"] + client.counts["bad_responses"] + client.counts["timeouts"]
    assert client.counts["failed"] == 0
    assert client.completion_tokens >= 1
