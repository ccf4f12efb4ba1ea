"""The HTTP API: OpenAI-compatible chat for the language model, and `/v1/emotion` for a trained run.

    GET  /health                 liveness, queue depth, counters (no key needed)
    GET  /v1/models              the chat model this server answers for
    POST /v1/chat/completions    OpenAI chat completions (non-streaming; `stream: true` sends the whole
                                 reply as one chunk); n = 1
    POST /v1/emotion             multipart: `file` (audio, video or image) and/or `text` → label and
                                 probability per class, through the run's own feature extractors, with
                                 the inputs the model used and those it does not read

Any OpenAI client works against it (`base_url="http://127.0.0.1:8000/v1"`), which is how
`emotune instruct` writes instruction data fully offline. Limits, all answered before work starts: an
API key when one is set (401), request size (413), media duration read from the upload's header (413),
a bounded number of requests waiting or running (503 with Retry-After), max_tokens and prompt length
(400). Clips longer than `long_clip_s` are extracted in a separate low-priority process, so a short
clip never waits behind a long one. Uploads live only in a temporary folder that is deleted with the
request; no field of a request names a path on the server. Every error, 404 / 405 / bad JSON / 500
included, has OpenAI's shape {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal, Optional, Union

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from emotune.media.kinds import ALL_EXT, media_kind
from emotune.serve.faults import FaultPlan
from emotune.serve.generation import GenRequest, GenResult
from emotune.serve.guard import Guard, error_body

log = logging.getLogger("emotune.serve")


@dataclasses.dataclass
class Limits:
    max_request_bytes: int = 1 << 20  # JSON requests (chat)
    max_upload_bytes: int = 50 << 20  # /v1/emotion uploads
    max_duration_s: float = 300.0  # /v1/emotion media longer than this get 413 (read from the header)
    long_clip_s: float = 30.0  # longer clips are extracted in the low-priority worker process (0: never)
    queue_size: int = 64  # requests admitted at once (waiting + running); more get 503
    max_tokens: int = 1024  # largest max_tokens a request may ask for
    default_max_tokens: int = 256
    max_prompt_tokens: int = 4096


class Admission:
    """Counts requests admitted and not yet answered; refuses more than `size` (the bounded queue)."""

    def __init__(self, size: int):
        self.size = size
        self.pending = 0
        self.refused = 0

    def try_enter(self) -> bool:
        # Only the event loop thread calls this, so a plain counter is race-free.
        if self.pending >= self.size:
            self.refused += 1
            return False
        self.pending += 1
        return True

    def leave(self) -> None:
        self.pending -= 1


@dataclasses.dataclass
class ServeState:
    model_id: Optional[str]  # the chat model's name in /v1/models (None: no chat)
    generator: Any = None  # emotune.serve.generation.Generator
    predictor: Any = None  # emotune.serve.predict.Predictor for /v1/emotion
    limits: Limits = dataclasses.field(default_factory=Limits)
    faults: FaultPlan = dataclasses.field(default_factory=FaultPlan)
    api_key: Optional[str] = None
    started: int = dataclasses.field(default_factory=lambda: int(time.time()))
    served: dict = dataclasses.field(default_factory=lambda: {"chat": 0, "emotion": 0, "prompt_tokens": 0,
                                                              "completion_tokens": 0})


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[dict], None] = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # logprobs, user, seed...: accepted, not used
    model: str
    messages: list[Message] = Field(min_length=1, max_length=256)
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = 1
    stop: Union[str, list[str], None] = None
    stream: bool = False


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: Optional[str] = None,
                 headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.headers = status, message, type_, code, headers


def create_app(state: ServeState):
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import asynccontextmanager

    # Emotion requests get their own threads, one per admitted request at most: a long clip waiting for
    # the long-clip worker then never keeps a short one from starting (the loop's default pool has ~6).
    emotion_threads = ThreadPoolExecutor(max_workers=state.limits.queue_size, thread_name_prefix="emotion")
    if state.predictor is not None:
        state.predictor.serve_limits(state.limits.max_duration_s, state.limits.long_clip_s)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        emotion_threads.shutdown(wait=False, cancel_futures=True)
        if state.predictor is not None and state.predictor.lane is not None:
            state.predictor.lane.close()  # the long-clip worker process ends with the server

    app = FastAPI(title="emotune", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    admission = Admission(state.limits.queue_size)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(error_body(exc.message, exc.type, exc.code), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            at = [p for p in first.get("loc", ()) if isinstance(p, int)]
            detail = (first.get("ctx") or {}).get("error") or "JSON decode error"
            return JSONResponse(error_body(f"request body is not valid JSON ({detail}"
                                           + (f" at character {at[0]})" if at else ")"),
                                           "invalid_request_error", "invalid_json"), status_code=400)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(error_body(f"{where or 'request'}: {first.get('msg', 'invalid request')}", "invalid_request_error"),
                            status_code=400)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc):
        return JSONResponse(error_body(f"no route {request.method} {request.url.path}", "invalid_request_error", "not_found"),
                            status_code=404)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        """405 and any other status the router raises, in the same shape as every other error."""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = headers.get("allow") or headers.get("Allow")
            message = f"method {request.method} is not allowed on {request.url.path}" + (f"; use {allowed}" if allowed else "")
            return JSONResponse(error_body(message, "invalid_request_error", "method_not_allowed"), status_code=405,
                                headers=headers)
        kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        # A bug must not answer in another shape than every other error; the traceback goes to the log.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); the server's log has the details",
                                       "server_error"), status_code=500)

    def admit():
        if not admission.try_enter():
            raise APIError(503, f"server busy: {admission.size} requests already waiting; retry shortly",
                           "server_error", "overloaded", headers={"Retry-After": "1"})

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": state.model_id, "emotion": state.predictor is not None,
                "pending": admission.pending, "refused": admission.refused, "served": state.served,
                "faults": state.faults.counts if state.faults.active else None}

    def model_card() -> dict:
        return {"id": state.model_id, "object": "model", "created": state.started, "owned_by": "emotune"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()] if state.model_id else []}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != state.model_id:
            raise APIError(404, f"model '{model_id}' is not served here", code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request):
        if state.generator is None:
            raise APIError(404, "this server has no chat model (started with --no-chat)", code="model_not_found")
        if req.model != state.model_id:
            raise APIError(404, f"model '{req.model}' is not served here; this server serves '{state.model_id}'",
                           code="model_not_found")
        if req.n != 1:
            raise APIError(400, "only n=1 is supported")
        max_tokens = req.max_completion_tokens or req.max_tokens or state.limits.default_max_tokens
        if max_tokens > state.limits.max_tokens:
            raise APIError(400, f"max_tokens {max_tokens} exceeds this server's limit of {state.limits.max_tokens}")
        messages = [_plain_message(m.role, m.content) for m in req.messages]
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])

        fault = state.faults.draw()
        if fault == "error":
            raise APIError(500, "injected fault: internal error", "server_error")
        if fault == "malformed":
            return Response('{"id": "chatcmpl-broken", "choices": [{"message": {"content": "trunc', media_type="application/json")
        if fault == "slow":
            await asyncio.sleep(state.faults.slow_s)
            if await request.is_disconnected():
                return Response(status_code=499)  # the client timed out: generate nothing for it

        admit()
        try:
            try:
                prompt_ids = state.generator.encode_chat(messages)
            except Exception as exc:  # a template that refuses this message order, for one
                raise APIError(400, f"cannot format these messages with the model's chat template: {exc}") from None
            limit = min(state.limits.max_prompt_tokens, state.generator.max_context - max_tokens)
            if len(prompt_ids) > limit:
                raise APIError(400, f"prompt is {len(prompt_ids)} tokens; this server takes at most {limit} "
                               f"with max_tokens={max_tokens}", code="context_length_exceeded")
            if fault == "empty":
                result = GenResult("", len(prompt_ids), 0, "stop")
            else:
                future = state.generator.submit(GenRequest(prompt_ids, max_tokens, req.temperature, req.top_p, stop))
                result = await _result_unless_gone(request, future)
                if result is None:
                    return Response(status_code=499)  # nobody is listening; the status is for the log
        finally:
            admission.leave()
        state.served["chat"] += 1
        state.served["prompt_tokens"] += result.prompt_tokens
        state.served["completion_tokens"] += result.completion_tokens
        body = _completion(state.model_id, result)
        if req.stream:
            return StreamingResponse(_as_stream(body), media_type="text/event-stream")
        return body

    @app.post("/v1/emotion")
    async def emotion(file: Optional[UploadFile] = File(default=None), text: Optional[str] = Form(default=None),
                      explain: bool = Form(default=False)):
        if state.predictor is None:
            raise APIError(404, "no trained run loaded: start the server as `emotune serve RUN_DIR`", code="no_run")
        if file is None and not (text or "").strip():
            raise APIError(400, "send a media `file` and/or a `text` field")
        admit()
        try:
            with tempfile.TemporaryDirectory(prefix="emotune_serve_") as tmp:
                media: dict[str, Optional[Path]] = {"audio": None, "video": None, "image": None}
                if file is not None:
                    field, suffix = _media_field(file.filename or "")
                    # The client's file name is never used as a path: only its checked extension is kept.
                    target = Path(tmp) / f"upload{suffix}"
                    with open(target, "wb") as f:
                        while chunk := await file.read(1 << 20):
                            f.write(chunk)
                    if target.stat().st_size == 0:
                        raise APIError(400, "the uploaded file is empty")
                    media[field] = target
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(emotion_threads, _predict, state.predictor, media, text, explain, tmp)
        finally:
            admission.leave()
        state.served["emotion"] += 1
        return result

    guarded = Guard(app, state.api_key, lambda path: state.limits.max_upload_bytes if path == "/v1/emotion"
                    else state.limits.max_request_bytes)
    return guarded


async def _result_unless_gone(request, future):
    """The generation result, or None when the client hung up first (a client that timed out and will
    retry): a request still waiting in the queue is then dropped instead of generated for nobody."""
    waiting = asyncio.wrap_future(future)
    while True:
        done, _ = await asyncio.wait({waiting}, timeout=0.5)
        if done:
            return waiting.result()
        if await request.is_disconnected():
            future.cancel()  # no effect once its batch has started; that batch simply finishes
            if not future.cancelled():
                return await waiting
            return None


def _plain_message(role: str, content) -> dict:
    """OpenAI content (a string or a list of typed parts) → the plain text the chat template takes."""
    if role == "developer":
        role = "system"
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        parts = []
        for part in content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"message part of type '{part.get('type')}' is not supported (text only)")
            parts.append(part["text"])
        text = "\n".join(parts)
    return {"role": role, "content": text}


def _completion(model_id: str, result) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "finish_reason": result.finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                  "total_tokens": result.prompt_tokens + result.completion_tokens},
    }


async def _as_stream(body: dict):
    """The finished reply as server-sent events: one content chunk, one closing chunk, [DONE]."""
    choice = body["choices"][0]
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"]}
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": choice["message"]["content"]},
                                  "finish_reason": None}]}
    last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}], "usage": body["usage"]}
    for chunk in (first, last):
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _media_field(filename: str) -> tuple[str, str]:
    suffix = Path(filename).suffix.lower()
    field = media_kind(filename)
    if field is not None:
        return field, suffix
    known = ", ".join(sorted(ALL_EXT))
    raise APIError(415, f"file type '{suffix or '(none)'}' is not accepted; send one of {known}", code="unsupported_media_type")


def _predict(predictor, media: dict, text: Optional[str], explain: bool, tmp: str) -> dict:
    from emotune.errors import EmotuneError
    from emotune.serve.duration import TooLong
    from emotune.serve.extraction import LaneBusy, LaneFailed

    try:
        result = predictor.predict(video=media["video"], audio=media["audio"], image=media["image"], text=text,
                                   explain=explain, face_dir=tmp)
    except TooLong as exc:
        raise APIError(413, str(exc), code="media_too_long") from None
    except LaneBusy as exc:
        raise APIError(503, str(exc), "server_error", "overloaded", headers={"Retry-After": "30"}) from None
    except LaneFailed as exc:
        raise APIError(500, str(exc), "server_error") from None
    except EmotuneError as exc:
        # Messages may name the temporary upload path; the client only needs to know it was its upload.
        raise APIError(400, str(exc).replace(tmp, "<upload>")) from None
    result = dict(result)
    result["face"] = result.get("face") is not None  # the crop lives in the deleted temp folder
    run = result.get("run")
    if isinstance(run, dict):
        result["run"] = {k: v for k, v in run.items() if k != "dir"}
    return result
