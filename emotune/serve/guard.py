"""The ASGI layer in front of the API: API key check and request size limits, before any route runs.

The body is read here (up to the route's limit) and handed on from memory, so an oversized request is
answered 413 without reaching a route or a temporary file, whether or not it declared Content-Length.
"""

from __future__ import annotations

import hmac
import json
from typing import Callable, Optional

OPEN_PATHS = ("/health",)  # answered without a key: liveness checks carry no data
# A client that is still sending when the server answers and closes sees "connection reset", not the
# 413; so a body somewhat over the limit is read and dropped first. Bigger ones are refused at once.
DRAIN_BYTES = 16 * 1024 * 1024


def error_body(message: str, type_: str, code: Optional[str] = None) -> dict:
    """OpenAI's error shape, so OpenAI clients raise their own typed exceptions with our message."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class Guard:
    def __init__(self, app, api_key: Optional[str], limit_for: Callable[[str], int]):
        self.app = app
        self.api_key = api_key or None
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key and path not in OPEN_PATHS and not self._authorised(headers):
            return await _reply(send, 401, error_body("missing or wrong API key (send 'Authorization: Bearer KEY')",
                                                      "authentication_error", "invalid_api_key"),
                                extra=[(b"www-authenticate", b"Bearer")])
        limit = self.limit_for(path)
        declared = headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                return await _reply(send, 400, error_body("bad Content-Length header", "invalid_request_error"))
            if too_big:
                if int(declared) <= limit + DRAIN_BYTES:
                    await _drain(receive)
                return await _too_large(send, limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                if message.get("more_body", False):
                    await _drain(receive)
                return await _too_large(send, limit)
            chunks.append(body)
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()  # after the body: only the disconnect notice remains

        return await self.app(scope, replay, send)

    def _authorised(self, headers: dict) -> bool:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self.api_key.encode())


async def _drain(receive, budget: int = DRAIN_BYTES) -> None:
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _too_large(send, limit: int):
    return await _reply(send, 413, error_body(f"request body exceeds the limit of {limit} bytes",
                                              "invalid_request_error", "request_too_large"))


async def _reply(send, status: int, body: dict, extra: list = ()):
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
               (b"connection", b"close"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
