"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response

from issuer.api_keys import RateLimiter
from issuer.errors import IssuerError
from issuer.http import mint_route, wallet
from issuer.http import routes as api
from issuer.http.app_state import Context
from issuer.http.guard import Guard
from issuer.http.metrics import Metrics, Scraper, render
from issuer.http.problems import error_response, problem_response
from issuer.http.worker_metrics import METRICS_DIR_ENV, WorkerShare
from issuer.keys.checkpoints import Ticker
from issuer.opening import open_storage
from issuer.service import IssuerService
from issuer.settings import Settings
from issuer.signing_health import SigningHealth
from issuer.storage import Storage
from issuer.storage.sqlite import SQLiteStorage
from suishenma import KeyFileError, UsageError, __version__

log = logging.getLogger("issuer")
DOCS_ASSETS = "/docs-assets"
# ``serve --workers N`` hands its settings to the worker processes in this variable (JSON).
SERVE_SETTINGS_ENV = "SUISHENMA_SERVE_SETTINGS"


def app_from_environment() -> FastAPI:
    """The app of one ``serve --workers N`` worker process, from the settings its parent checked.

    Raises: KeyError when not started by ``serve``; SealError, StorageUnavailable as ``open_storage``.
    """
    settings = Settings.model_validate_json(os.environ[SERVE_SETTINGS_ENV])
    folder = os.environ.get(METRICS_DIR_ENV)  # where the workers of this serve share their counters
    return create_app(settings, open_storage(settings), metrics_dir=Path(folder) if folder else None)


def create_app(
    settings: Settings,
    storage: Storage | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    metrics_dir: Path | None = None,
) -> FastAPI:
    """Build the app on ``storage`` (default: the one ``settings`` name). ``clock`` is the time codes and
    lists are signed with and shared rate buckets are filled by; ``monotonic`` paces the API-key cache.
    ``metrics_dir``: the folder where the workers of one ``serve --workers N`` publish their counters, so
    that ``/metrics`` reports their sum (``issuer.http.worker_metrics``); None for a single process."""
    store = storage or open_storage(settings)
    service = IssuerService(settings, store)
    limiter = RateLimiter(store, clock=clock)
    ctx = Context(service, Metrics(), clock, limiter, monotonic)
    share = WorkerShare(metrics_dir, ctx.metrics) if metrics_dir is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(store, SQLiteStorage):
            store.checkpoint_in_background()
        # signed audit checkpoints: at start, every audit_checkpoint_s while serving, and at shutdown;
        # mint counters every mint_count_flush_s and at shutdown
        tickers = [
            Ticker(lambda: service.anchor.write(ctx.now(), keep_lease=True), settings.audit_checkpoint_s),
            Ticker(service.mints.flush, settings.mint_count_flush_s, "mint-counts", "mint counters"),
        ]
        app.state.audit_ticker, app.state.mint_ticker = tickers
        for ticker in tickers:
            ticker.start()
        if share is not None:
            share.start()
        yield
        for ticker in tickers:
            ticker.stop()
        if share is not None:
            share.stop()  # after the tickers: their last signatures are counted
        with contextlib.suppress(IssuerError):  # the database away: the lease runs out by itself
            service.anchor.release(ctx.now())
        store.close()

    # /docs and /redoc with Swagger UI and ReDoc served from the fastapi-offline package, not a CDN: they
    # work with no network, as on an issuer's isolated network or where CDNs are unreliable.
    app = FastAPIOffline(
        title="Suishenma issuer",
        version=__version__,
        description="Enrols people, keeps their status, mints short-lived signed QR codes, and publishes "
        "the signed trust list and status lists that offline verifiers sync.",
        lifespan=lifespan,
        # Starlette's trailing-slash redirect builds its Location from the Host header: a cache in front
        # would store a redirect to any host a client names. Every route has one spelling; others are 404.
        redirect_slashes=False,
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
    app.state.ctx = ctx

    health = SigningHealth(ctx.service)  # shared by /healthz and /metrics: one key check, logged once
    scraper = Scraper(health, store, settings.issuer_id)

    @app.get(
        "/healthz",
        tags=["operations"],
        responses={503: {"description": "The issuer cannot sign; `reason` says why, the messages what to do."}},
    )
    async def healthz() -> Response:
        """`{"ok": true}` while the issuer can sign; otherwise 503 with `reason` (`not_initialised`,
        `key_file_missing`, `key_file_unreadable`, `key_file_damaged`, `passphrase_missing`,
        `passphrase_wrong`, `key_not_encrypted`, `database_unavailable`, `unavailable`) and a message in Chinese and
        English. The database is looked at when the signing key is (every 2 s), not on every call."""
        result = health.check()
        body = json.dumps(result.body(), ensure_ascii=False).encode()
        return Response(body, 200 if result.ok else 503, media_type="application/json")

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus text format: the counters and histograms (summed over the workers of a `serve
        --workers N`, the others' part up to about a second old), and gauges read at scrape time (whether the
        issuer can sign, whether the database answers, how far audit checkpoints lag). Always 200: what is
        broken shows as a 0, never as a failed scrape."""

        def exposition() -> str:
            gauges = scraper.gauges(ctx.now())
            return render(share.merged() if share is not None else ctx.metrics.snapshot(), gauges)

        text = await run_in_threadpool(exposition)  # database reads and snapshot files off the event loop
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    app.router.routes.append(mint_route.route)  # before the API router's routes: matched first
    app.include_router(api.router)
    if settings.demo_wallet:
        app.include_router(wallet.router)

    for raised_on_purpose in (IssuerError, UsageError, KeyFileError):
        app.add_exception_handler(raised_on_purpose, problem_response)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        return error_response("invalid_input", problems)

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 413:
            return error_response("body_too_large")
        if exc.status_code in (400, 422):  # e.g. a body that is not UTF-8 JSON
            return error_response("invalid_input", str(exc.detail))
        if exc.status_code == 404:
            return error_response("not_found", {"path": request.url.path})
        body = {"error": "http_error", "message_en": str(exc.detail), "message_zh": str(exc.detail), "detail": None}
        return Response(json.dumps(body), exc.status_code, exc.headers, media_type="application/json")

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        # Log the type and place only: exception text could carry request data.
        log.error("internal error in %s: %s", request.url.path, type(exc).__name__)
        ctx.metrics.inc("suishenma_internal_errors_total")
        return error_response("internal")

    bearer_openapi(app, api.router)
    app.add_middleware(
        Guard,
        metrics=ctx.metrics,
        max_body=settings.max_body_bytes,
        larger={api.STATUS_UPDATES: settings.max_batch_body_bytes},
    )
    # every endpoint the guard can name (it names a request no route matched ``unmatched``): errors start at 0
    named = (getattr(getattr(route, "endpoint", None), "__name__", None) for route in app.routes)
    ctx.metrics.declare_endpoints({name for name in named if isinstance(name, str)} | {"unmatched"})
    return app


def bearer_openapi(app: FastAPI, router: APIRouter) -> None:
    """Declare the bearer scheme, and on each route the scope its key needs, in the OpenAPI schema."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        spec.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "API key from `api-key create`"}
        }
        for route in router.routes:  # the router's own list: app.routes nests included routers
            if not isinstance(route, APIRoute):
                continue
            calls = [d.call for d in route.dependant.dependencies] + [route.endpoint]
            scope = next((s for s in (getattr(c, "required_scope", None) for c in calls) if s), None)
            if scope is None:
                continue
            for method in route.methods or ():
                op = spec["paths"][route.path_format][method.lower()]
                op["security"] = [{"bearer": []}]
                op["description"] = (op.get("description", "") + f"\n\nNeeds an API key with scope `{scope}`.").strip()
        app.openapi_schema = spec
        return spec

    app.openapi = schema  # type: ignore[method-assign]
