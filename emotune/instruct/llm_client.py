"""A small asynchronous client for any OpenAI-compatible chat endpoint (emotune serve, vLLM, llama.cpp,
Ollama, a hosted API).

What it adds over a bare POST: a limit on requests in flight, a timeout per request, retries with
exponential backoff and jitter on failures that may pass (timeouts, dropped connections, 429 and 5xx,
responses that are not the JSON they should be), token counts from `usage`, and counters of every kind
of failure so a run can report what happened. Errors that retrying cannot fix (bad key, unknown model)
stop the run with one clear line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from typing import Optional

from emotune.errors import EmotuneError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
FATAL_STATUS = {401, 403, 404}


class LLMFatal(EmotuneError):
    """The endpoint refuses every request the same way (key, model, URL): retrying cannot help."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class LLMFailed(Exception):
    """One request still failed after every retry; the caller skips its record and counts it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass
class Reply:
    text: str
    finish_reason: Optional[str]
    prompt_tokens: int
    completion_tokens: int


class LLMClient:
    def __init__(self, base_url: str, model: Optional[str] = None, api_key: Optional[str] = None,
                 concurrency: int = 4, timeout_s: float = 60.0, retries: int = 3, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, seed: int = 0):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout_s),
                                       limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
        self._slots = asyncio.Semaphore(concurrency)
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._rng = random.Random(seed)
        self.counts: Counter = Counter()  # calls, retries, timeouts, http_<status>, bad_response, connection
        self.prompt_tokens = 0
        self.completion_tokens = 0

    async def __aenter__(self) -> "LLMClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- discovery ----------------------------------------------------------------------------------------
    async def check(self) -> str:
        """Reach the server once, before anything is written; pick the model if unset.

        Fails with one line naming the URL when the endpoint cannot be reached, refuses the key, or does
        not speak the OpenAI API (GET /models is not a model list and, for a named model, a one-token
        POST /chat/completions is not a chat completion either).
        """
        import httpx

        try:
            resp = await self._http.get("/models")
        except httpx.HTTPError as exc:
            raise EmotuneError(f"cannot reach the LLM endpoint {self.base_url}: {_describe(exc)}") from None
        if resp.status_code in (401, 403):
            raise LLMFatal(f"{self.base_url} refused the API key (HTTP {resp.status_code}); set the key's environment variable")
        listed = _model_ids(resp)
        if listed is not None and (self.model is None or self.model in listed):
            if self.model is None:
                if not listed:
                    raise EmotuneError(f"{self.base_url} lists no models; name one in instruct.llm.model")
                self.model = listed[0]
            return self.model
        if listed is None:
            said = f"GET {self.base_url}/models answered {_status_text(resp)}, not a model list"
            if self.model is None:
                raise EmotuneError(f"{self.base_url} is not an OpenAI-compatible endpoint: {said}{_hint(self.base_url)}")
        else:
            said = f"model '{self.model}' is not among the {len(listed)} it lists"
        # Some servers list no models, or list them under other names: one token tells for sure.
        try:
            await self.chat([{"role": "user", "content": "Say OK."}], max_tokens=1, temperature=0.0)
        except LLMFatal as exc:
            if exc.status == 404 and listed is None:  # the path is wrong, not the model
                raise EmotuneError(f"{self.base_url} is not an OpenAI-compatible endpoint: {said}, and POST "
                                   f"/chat/completions answered HTTP 404{_hint(self.base_url)}") from None
            raise
        except LLMFailed as exc:
            raise EmotuneError(f"{self.base_url} is not an OpenAI-compatible endpoint: {said}, and POST "
                               f"/chat/completions failed ({exc.reason}){_hint(self.base_url)}") from None
        return self.model

    # -- chat -----------------------------------------------------------------------------------------------
    async def chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.7, top_p: float = 1.0) -> Reply:
        """One completion, retried on transient failures. Raises LLMFailed when retries run out."""
        import httpx

        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, "top_p": top_p}
        last, retry_after = "no attempt", None
        for attempt in range(self.retries + 1):
            if attempt:
                self.counts["retries"] += 1
                await asyncio.sleep(self._delay(attempt, retry_after))
            retry_after = None
            async with self._slots:
                self.counts["calls"] += 1
                try:
                    resp = await self._http.post("/chat/completions", json=body)
                except httpx.TimeoutException:
                    self.counts["timeouts"] += 1
                    last = "timeout"
                    continue
                except httpx.TransportError as exc:
                    self.counts["connection_errors"] += 1
                    last = f"connection: {_describe(exc)}"
                    continue
            if resp.status_code != 200:
                self.counts[f"http_{resp.status_code}"] += 1
                message = _error_message(resp)
                if resp.status_code in FATAL_STATUS:
                    raise LLMFatal(f"{self.base_url}: HTTP {resp.status_code} for model '{self.model}': {message}",
                                   resp.status_code)
                if resp.status_code not in RETRY_STATUS:
                    raise LLMFailed(f"http {resp.status_code}: {message}")  # this request, as sent, is refused
                retry_after = _retry_after(resp)
                last = f"http {resp.status_code}"
                continue
            reply = _read_reply(resp)
            if reply is None:
                self.counts["bad_responses"] += 1
                last = "unreadable response"
                continue
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens
            return reply
        self.counts["failed"] += 1
        raise LLMFailed(f"{last} (after {self.retries + 1} attempts)")

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        delay = base * (0.5 + self._rng.random() / 2)  # jitter: concurrent retries do not arrive in step
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_s))
        return delay


def _read_reply(resp) -> Optional[Reply]:
    """The assistant text and token counts, or None when the body is not a chat completion."""
    try:
        data = resp.json()
        choice = data["choices"][0]
        text = choice["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if text is not None and not isinstance(text, str):
        return None
    usage = data.get("usage") or {}
    return Reply(text=text or "", finish_reason=choice.get("finish_reason"),
                 prompt_tokens=int(usage.get("prompt_tokens") or 0), completion_tokens=int(usage.get("completion_tokens") or 0))


def _model_ids(resp) -> Optional[list[str]]:
    """The ids of an OpenAI model list ({"data": [{"id": ...}, ...]}), or None when the answer is not one."""
    if resp.status_code != 200:
        return None
    try:
        data = resp.json().get("data")
    except (ValueError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _status_text(resp) -> str:
    kind = (resp.headers.get("content-type") or "no content type").split(";")[0]
    return f"HTTP {resp.status_code} ({kind})"


def _hint(base_url: str) -> str:
    """The usual mistake: the server's root instead of its API prefix."""
    from urllib.parse import urlsplit

    if urlsplit(base_url).path.rstrip("/").endswith("/v1"):
        return ""
    return f"; OpenAI-compatible servers usually answer under /v1: try {base_url}/v1"


def _error_message(resp) -> str:
    """The server's reason in one line: an OpenAI error message, else the body (not an HTML page)."""
    try:
        err = resp.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return " ".join(str(err["message"]).split())[:300]
    except (ValueError, AttributeError):
        pass
    if "html" in (resp.headers.get("content-type") or "").lower():
        return resp.reason_phrase
    return " ".join((resp.text or "").split())[:300] or resp.reason_phrase


def _retry_after(resp) -> Optional[float]:
    value = resp.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
