"""The API's pieces in-process, on a tiny random LM: batching, stop rules, the bounded queue, the fault plan."""

from __future__ import annotations

import asyncio

import pytest

from emotune.errors import EmotuneError
from emotune.serve.faults import FaultPlan
from tests.model.tiny import make_tiny_lm


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from emotune.model.backbone import load_backbone

    path = make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))
    return load_backbone(str(path))


def test_a_batch_gives_each_request_its_own_length_and_stop(tiny):
    from emotune.serve.generation import Generator, GenRequest

    model, tok = tiny
    gen = Generator(model, tok, max_batch=8, threads=1)
    try:
        short = gen.encode_chat([{"role": "user", "content": "angry"}])
        long = gen.encode_chat([{"role": "user", "content": "Which emotion does the speaker feel? Think step by step."}])
        alone = gen.submit(GenRequest(long, 6, 0.0, 1.0, [])).result(timeout=60)
        futures = [gen.submit(GenRequest(p, n, 0.0, 1.0, [])) for p, n in ((short, 3), (long, 6), (short, 9))]
        a, b, c = [f.result(timeout=60) for f in futures]
    finally:
        gen.close()
    assert (a.prompt_tokens, b.prompt_tokens) == (len(short), len(long))
    for res, limit in ((a, 3), (b, 6), (c, 9)):
        assert res.completion_tokens <= limit
        assert res.finish_reason == ("length" if res.completion_tokens == limit else "stop")
    # Left padding in a batch does not change a greedy reply.
    assert b.text == alone.text


def test_stop_strings_end_the_reply(tiny):
    from emotune.serve.generation import Generator, GenRequest

    model, tok = tiny
    gen = Generator(model, tok, threads=1)
    try:
        prompt = gen.encode_chat([{"role": "user", "content": "happy sad"}])
        full = gen.submit(GenRequest(prompt, 12, 0.0, 1.0, [])).result(timeout=60)
        if len(full.text) < 4:
            pytest.skip("the random model ended its reply at once")
        stop = full.text[2:4]
        cut = gen.submit(GenRequest(prompt, 12, 0.0, 1.0, [stop])).result(timeout=60)
    finally:
        gen.close()
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop"


def test_requests_beyond_the_queue_get_503(tiny):
    import httpx

    from emotune.serve.api import Limits, ServeState, create_app
    from emotune.serve.generation import Generator

    model, tok = tiny
    state = ServeState(model_id="tiny", generator=Generator(model, tok, threads=1), limits=Limits(queue_size=2))
    app = create_app(state)

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = {"model": "tiny", "max_tokens": 16, "messages": [{"role": "user", "content": "angry"}]}
            return await asyncio.gather(*[client.post("/v1/chat/completions", json=body) for _ in range(6)])

    try:
        replies = asyncio.run(burst())
    finally:
        state.generator.close()
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) >= 2 and codes.count(503) >= 1 and set(codes) <= {200, 503}
    busy = next(r for r in replies if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "overloaded"


def test_fault_plan_spec():
    cycle = FaultPlan("error,ok,empty")
    assert [cycle.draw() for _ in range(6)] == ["error", None, "empty", "error", None, "empty"]
    assert cycle.counts == {"error": 2, "empty": 2, "malformed": 0, "slow": 0}
    draw_all = lambda plan: [plan.draw() for _ in range(2000)]
    draws = draw_all(FaultPlan("error=0.5,slow=0.25", seed=1))
    assert abs(draws.count("error") / 2000 - 0.5) < 0.05 and abs(draws.count("slow") / 2000 - 0.25) < 0.05
    assert draws == draw_all(FaultPlan("error=0.5,slow=0.25", seed=1))  # seeded: the same sequence every time
    assert not FaultPlan("").active and FaultPlan("").draw() is None
    for bad in ("crash=0.1", "error=2", "error=0.6,empty=0.6", "error=0.1,empty", "error=x"):
        with pytest.raises(EmotuneError):
            FaultPlan(bad)
