"""One pure-ASGI middleware for every request: caps the body size and records status and latency.

Pure ASGI rather than ``BaseHTTPMiddleware``, whose per-request task and queue would cost more than
the mint endpoint's own work.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from issuer.http.metrics import Metrics

TOO_LARGE = {
    "error": "body_too_large",
    "message_en": "Request body is too large.",
    "message_zh": "请求体过大。",
}


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so the framework answers 413 itself."""

    def __init__(self) -> None:
        super().__init__(413, "body_too_large")


class Guard:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int, larger: dict[str, int] | None = None) -> None:
        """``larger``: paths allowed a bigger body than ``max_body`` (the batch of status changes)."""
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False
        max_body = self.larger.get(scope["path"], self.max_body)

        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > max_body
                except ValueError:
                    too_large = True
                if too_large:
                    await _reply(send, 413, TOO_LARGE)
                    self._observe(scope, 413, start)
                    return

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                status = 413
                await _reply(send, 413, TOO_LARGE)
        finally:
            self._observe(scope, status, start)

    def _observe(self, scope: Scope, status: int, start: float) -> None:
        endpoint = getattr(scope.get("endpoint"), "__name__", "unmatched")
        self.metrics.observe(endpoint, status, time.perf_counter() - start)


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
