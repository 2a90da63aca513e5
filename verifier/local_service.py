"""The verifier as a local HTTP service, for gate controllers written in Java, C# or C (DESIGN §4).

``suishenma-verifier serve --state DIR`` runs ``create_app`` under uvicorn. This module is the only one of
the verifier that imports FastAPI, and nothing imports it but ``cli serve``: the library stays free of
web frameworks. Pydantic lives here only, at the HTTP boundary; the verifier's own model is dataclasses.

- ``POST /v1/verify`` ``{"code": "..."}`` -> the verdict; always 200 for a code (a refusal is a verdict);
  400 ``invalid_json`` for a body that is not JSON at all, 413 for a body over the cap, 415 for a body not
  declared ``application/json``, 422 ``invalid_body`` for JSON that is not ``{"code": string}``.
- ``GET /healthz`` (never needs the token), ``GET /v1/status`` (lists, staleness, clock skew),
  ``GET /metrics`` (Prometheus text: the families of ``ops_metrics``, and the service's request counters),
  ``GET /openapi.json`` and ``/docs`` (Swagger UI served from here, no network needed: ``service_docs``).
- A bearer token, read from a 0600 file, guards every route but /healthz and the API's description
  (/openapi.json, /docs and its assets) when one is configured; the CLI
  requires one when the service is bound to anything other than loopback.
- Without a token, a request's Host must name the address it reached (421 otherwise), and every request but
  GET, HEAD and OPTIONS must declare ``Content-Type: application/json`` (415 otherwise): without a token,
  these keep a web page open on the kiosk from driving the service (DNS rebinding; cross-site form and
  ``text/plain`` posts, which browsers send without asking the service first). No route redirects: a
  wrong path is a 404.
- Lists sync in a background thread every ``sync_interval`` seconds; its failures are counted by reason.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import lru_cache

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._verifier import Verifier
from .ops_metrics import CONTENT_TYPE, SyncFailures, VerdictCounters, family, render
from .service_docs import add_docs
from .store import GroupCommitter

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 16 * 1024  # a code is at most a few kB of text (suishenma's text cap is 4 kB)
MAX_CODE_CHARS = 8192
JSON = "application/json"


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=MAX_CODE_CHARS, description="The scanned text, as the QR code holds it")


class VerdictOut(BaseModel):
    decision: str = Field(description="ALLOW, DENY or REFER")
    reason: str = Field(description="Reason code (README: verdict reasons)")
    message_zh: str
    message_en: str
    display: dict[str, str] = Field(description="masked_name, masked_id, status, issuer, code_type")
    subject: str | None = None
    issuer: str | None = None
    elapsed_ms: float


class Problem(BaseModel):
    error: str
    message_zh: str
    message_en: str


class Metrics:
    """The service's /metrics: the verifier families every verifier exports (``ops_metrics``), and the
    service's own request counters; thread-safe."""

    def __init__(self) -> None:
        self.verdicts = VerdictCounters()
        self.sync_failures = SyncFailures()
        self.rejected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def verdict(self, decision: str, reason: str, seconds: float) -> None:
        self.verdicts.verdict(decision, reason, seconds)

    def reject(self, why: str) -> None:
        with self._lock:
            self.rejected[why] += 1

    def render(self, verifier: Verifier, now: float | None = None) -> str:
        """Raises: sqlite3.Error when the state cannot be read (as ``ops_metrics.render``)."""
        with self._lock:
            rejected = sorted(self.rejected.items())
        _, seconds = self.verdicts.snapshot()
        out = family("verify_seconds_total", "counter", "Seconds spent deciding verdicts.", [({}, round(seconds, 6))])
        help_rejected = "Requests refused before a verdict, by why."
        out += family("requests_rejected_total", "counter", help_rejected, [({"why": w}, n) for w, n in rejected])
        return render(verifier, self.verdicts, self.sync_failures, now=now) + "\n".join(out) + "\n"


class BackgroundSync(threading.Thread):
    """``verifier.sync()`` now and every ``interval`` seconds until stopped; never raises. Each report's
    problems are counted in ``failures`` (``sync_failures_total``)."""

    def __init__(
        self,
        verifier: Verifier,
        interval: float,
        clock: Callable[[], float] | None = None,
        failures: SyncFailures | None = None,
    ) -> None:
        super().__init__(name="verifier-sync", daemon=True)
        self.verifier, self.interval, self.clock = verifier, interval, clock
        self.failures = failures if failures is not None else SyncFailures()
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                report = self.verifier.sync(now=self.clock() if self.clock else None)
                self.failures.count(report)
                if not report.ok:
                    log.warning("sync incomplete: %s", "; ".join(report.errors))
            except Exception:
                self.failures.crashed()
                log.exception("sync failed; retrying at the next interval")
            self.stop_event.wait(self.interval)


class BodyCap:
    """Pure ASGI: refuses a body over ``max_body`` bytes (413) from its Content-Length or as it streams in."""

    def __init__(self, app: ASGIApp, max_body: int, metrics: Metrics) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_body):
                await self._too_large(send)
                return
        received, started = 0, False

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped, tracked)
        except _TooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        self.metrics.reject("too_large")
        body = _problem("body_too_large", f"请求体超过 {self.max_body} 字节", f"body over {self.max_body} bytes")
        await _send_problem(send, 413, body)


class RequestGuard:
    """Pure ASGI, outermost: refuses, before anything reads the body, a request whose Host does not name the
    address it reached (421) and a request other than GET, HEAD or OPTIONS not declared ``application/json``
    (415).

    A web page open on the kiosk reaches this token-less service either under its own domain re-pointed at
    127.0.0.1 (DNS rebinding: its Host is that domain) or cross-site with a body a browser sends without a
    CORS preflight (form encodings, ``text/plain``); a JSON content type always needs a preflight, which
    this service never grants.

    With a token (``check_host`` False) the Host is not checked: a page cannot send the token, and callers
    on a network may address the service by a name. A request with no Host at all (HTTP/1.0 controllers) is
    let through either way: a browser always sends one.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, check_host: bool = True) -> None:
        self.app, self.metrics, self.check_host = app, metrics, check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The address the connection was accepted at (the server's getsockname): the bound address, or on a
        # wildcard bind the one the client dialled. None (e.g. a Unix socket) admits nothing.
        server = scope.get("server")
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        default_port = 443 if scope.get("scheme") == "https" else 80
        named = len(hosts) == 1 and server and server[1] and _host_ok(hosts[0], server[0], server[1], default_port)
        if self.check_host and hosts and not named:
            # 421 Misdirected Request (RFC 9110 §15.5.20) rather than 403: the sender is not denied anything;
            # its request names an authority this service is not (a rebinding page's Host is its own
            # domain), and the same client succeeds once it addresses the service by its address.
            self.metrics.reject("misdirected")
            names = _server_names(server[0], server[1]) if server and server[1] else ("?",)
            zh = f"Host 头须为本服务的地址：{' 或 '.join(names)}"
            en = f"the Host header must name this service's address: {' or '.join(names)}"
            await _send_problem(send, 421, _problem("misdirected_request", zh, en))
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):  # no route reads a body of these (OPTIONS: 405)
            types = [value for name, value in scope["headers"] if name == b"content-type"]
            if len(types) != 1 or types[0].split(b";", 1)[0].strip().lower() != JSON.encode():
                self.metrics.reject("unsupported_media_type")
                zh = '请求体须以 Content-Type: application/json 发送：{"code": "…"}'
                en = 'the body must be sent as Content-Type: application/json: {"code": "..."}'
                await _send_problem(send, 415, _problem("unsupported_media_type", zh, en))
                return
        await self.app(scope, receive, send)


@lru_cache(maxsize=64)
def _server_names(host: str, port: int) -> tuple[str, ...]:
    """The ``host:port`` a Host header may give on a connection accepted at ``host``:``port``: that address,
    and ``localhost`` as well when it is loopback."""
    literal, loopback = _host_literal(host)
    return (f"{literal}:{port}", f"localhost:{port}") if loopback and literal != "localhost" else (f"{literal}:{port}",)


@lru_cache(maxsize=256)
def _host_ok(value: bytes, server_host: str, server_port: int, default_port: int) -> bool:
    """Whether the Host header ``value`` names ``server_host``:``server_port`` (see ``_server_names``); a
    malformed value does not. A port left out is the scheme's default."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return False
    if text.startswith("["):
        name, bracket, port = text[1:].partition("]")
        if not bracket or ":" not in name:
            return False  # brackets hold an IPv6 address only
    else:
        name, colon, digits = text.partition(":")
        port = colon + digits
    if port and not (port.startswith(":") and port[1:].isdigit() and len(port) <= 6):
        return False
    number = int(port[1:]) if port else default_port
    return f"{_host_literal(name)[0]}:{number}" in _server_names(server_host, server_port)


def _host_literal(host: str) -> tuple[str, bool]:
    """``host`` as a Host header writes it (an IP address normalised, IPv6 in brackets, IPv4-mapped IPv6 as
    IPv4; a name in lower case), and whether it is a loopback address."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower(), False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (f"[{ip}]" if ip.version == 6 else str(ip)), ip.is_loopback


async def _send_problem(send: Send, status: int, body: bytes) -> None:
    """Answer ``status`` with the JSON problem ``body`` (from ``_problem``), straight from ASGI middleware."""
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", JSON.encode())]})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(StarletteHTTPException):
    """Raised as the body streams in; an HTTPException, so FastAPI hands it on instead of calling it a parse error."""

    def __init__(self) -> None:
        super().__init__(413, "body_too_large")


def _problem(error: str, zh: str, en: str) -> bytes:
    return json.dumps({"error": error, "message_zh": zh, "message_en": en}, ensure_ascii=False).encode()


def _invalid_json(detail: str) -> bytes:
    """The 400 problem for a body that is not JSON at all; ``detail``: the parser's message, e.g. ``Invalid
    JSON: expected value at line 1 column 1``."""
    detail = detail.removeprefix("Invalid JSON: ")
    place = re.search(r"at line (\d+) column (\d+)$", detail)
    where_zh = f"（第 {place[1]} 行第 {place[2]} 列）" if place else ""
    zh = f'请求体不是有效的 JSON{where_zh}：应为 {{"code": "…"}}'
    return _problem("invalid_json", zh, f'the body is not valid JSON ({detail}): send {{"code": "..."}}')


def create_app(
    verifier: Verifier,
    *,
    token: str | None = None,
    sync_interval: float | None = 300.0,
    max_body: int = MAX_BODY_BYTES,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """The service around an open ``verifier`` (the caller closes it).

    ``token``: when given, every route but /healthz needs ``Authorization: Bearer <token>``.
    ``sync_interval``: seconds between background syncs; None runs none (tests sync by hand).
    ``clock``: the time verdicts and syncs are taken at (None: the verifier reads the wall clock).
    """
    metrics = Metrics()
    committer = GroupCommitter(verifier.store)  # verdicts of concurrent requests share one durable commit

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sync = BackgroundSync(verifier, sync_interval, clock, metrics.sync_failures) if sync_interval else None
        committer.start()
        if sync:
            sync.start()
        try:
            yield
        finally:
            if sync:
                sync.stop_event.set()
                sync.join(timeout=15)
            committer.stop()

    async def authorised(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            metrics.reject("unauthorised")
            raise _Unauthorised

    guarded = [Depends(authorised)]
    app = FastAPI(
        title="Suishenma local verifier",
        description="随申码本地核验服务 · the offline verifier for gate controllers in any language",
        version="1",
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect would be built from the request's Host: a wrong path is a 404
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN: service_docs serves it from here
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    add_docs(app)

    @app.exception_handler(_Unauthorised)
    async def unauthorised(_: Request, __: Exception) -> Response:
        body = _problem("unauthorised", "需要正确的 Bearer 令牌", "a valid bearer token is required")
        return Response(body, 401, {"WWW-Authenticate": "Bearer"}, media_type=JSON)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, _TooLarge):
            metrics.reject("too_large")
            zh, en = f"请求体超过 {max_body} 字节", f"body over {max_body} bytes"
            return Response(_problem("body_too_large", zh, en), 413, media_type=JSON)
        if exc.status_code == 400:  # a body FastAPI's own parser could not read
            metrics.reject("invalid_json")
            return Response(_invalid_json(str(exc.detail)), 400, media_type=JSON)
        if exc.status_code == 404:
            return Response(_problem("not_found", "没有这个路径", "no such path"), 404, media_type=JSON)
        if exc.status_code == 405:
            body = _problem("method_not_allowed", "此路径不接受这个方法", "this path does not take that method")
            return Response(body, 405, dict(exc.headers or {}), media_type=JSON)
        return Response(_problem("http_error", str(exc.detail), str(exc.detail)), exc.status_code, media_type=JSON)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        metrics.reject("invalid_body")
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        detail = f"{first.get('msg', 'invalid')}" + (f" at {where}" if where else "")
        zh = f'请求体应为 JSON：{{"code": "…"}}（{detail}）'
        return Response(
            _problem("invalid_body", zh, f'the body must be JSON {{"code": "..."}} ({detail})'), 422, media_type=JSON
        )

    @app.post(
        "/v1/verify",
        dependencies=guarded,
        openapi_extra={"requestBody": {"required": True, "content": {JSON: {"schema": VerifyIn.model_json_schema()}}}},
        responses={
            200: {"model": VerdictOut},
            400: {"model": Problem},
            401: {"model": Problem},
            413: {"model": Problem},
            415: {"model": Problem},
            421: {"model": Problem},
            422: {"model": Problem},
        },
    )
    async def verify(request: Request) -> Response:
        """Decide on a scanned code. The decision (a signature check) runs on the event loop: a thread hop
        would cost more than the work; its durable log write is committed with those of the other requests
        in flight (``GroupCommitter``) and awaited. The body goes straight to pydantic's JSON parser
        (FastAPI's body machinery would cost more than the verify).
        \f
        Served by ``fast_verify``, the same function as a plain Starlette route matched first: FastAPI's
        dependency solving (the token check) cost about as much as the verify itself."""
        try:
            body = VerifyIn.model_validate_json(await request.body())
        except ValidationError as exc:
            unparsed = next((e for e in exc.errors() if e["type"] == "json_invalid"), None)
            if unparsed is not None:
                metrics.reject("invalid_json")
                return Response(_invalid_json(unparsed["msg"]), 400, media_type=JSON)
            raise RequestValidationError(exc.errors()) from None
        verdict = await verifier.verify_grouped(body.code, committer, now=clock() if clock else None)
        metrics.verdict(verdict.decision.value, verdict.reason.value, verdict.elapsed_ms / 1000)
        return Response(json.dumps(verdict.as_dict(), ensure_ascii=False), media_type=JSON)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        """Liveness: the process answers (lists and clock are in /v1/status)."""
        return {"ok": True}

    @app.get("/v1/status", dependencies=guarded)
    def status() -> Response:  # a thread, not the event loop: health waits while a sync installs a list
        """Lists (versions, ages, staleness per issuer), the last sync, and the clock's skew."""
        h = verifier.health(now=clock() if clock else None)
        return Response(json.dumps(dataclasses.asdict(h), ensure_ascii=False), media_type=JSON)

    @app.get("/metrics", dependencies=guarded, response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:  # a thread, as status(): the event loop keeps verifying
        """Prometheus text format."""
        return PlainTextResponse(metrics.render(verifier, clock() if clock else None), media_type=CONTENT_TYPE)

    async def fast_verify(request: Request) -> Response:
        await authorised(request)
        return await verify(request)

    app.router.routes.insert(0, Route("/v1/verify", fast_verify, methods=["POST"]))
    app.add_middleware(BodyCap, max_body=max_body, metrics=metrics)
    # outermost: before the body cap reads anything
    app.add_middleware(RequestGuard, metrics=metrics, check_host=token is None)
    return app


class _Unauthorised(Exception):
    pass
