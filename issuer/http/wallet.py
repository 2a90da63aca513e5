"""The demo wallet: what the mobile app shows. Enabled with ``demo_wallet`` only; it mints without a key.

What a resident sees is written for them, Chinese first: an unknown subject is an HTML page (404), and a
lapsed status or a refused phone is said on the card by the page's script, never as the API's JSON.

It is an installable web app: a manifest per person (its start URL is that person's page), icons, and a
service worker (``wallet-sw.js``) that keeps the page so that it opens, and makes device-bound codes, with
no network. The page asks ``/status`` (ETag'd, a few dozen bytes) every ``STATUS_CHECK_S`` seconds while
online, so a status change reaches the screen within a minute.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import HTMLResponse, Response

from issuer.errors import NotFound, Problem
from issuer.http.app_state import Context
from issuer.http.bodies import DeviceCredentialRequest
from issuer.http.callers import as_json
from issuer.http.routes import batch_json
from issuer.http.wallet_icons import icon_png
from issuer.qr_images import qr_matrix, svg

router = APIRouter(prefix="/demo/wallet", tags=["demo"])
SUBJECT_PATTERN = r"[0-9a-f]{16}"
SubjectId = Annotated[str, Path(pattern=f"^{SUBJECT_PATTERN}$")]
ACTOR = "demo-wallet"
ICON_SIZES = (192, 512)


@cache
def _page() -> str:
    """The page with its two scripts inlined: once loaded, it needs nothing more from the network."""
    static = resources.files(__package__).joinpath("static")
    page = static.joinpath("wallet.html").read_text("utf-8")
    qr = static.joinpath("vendor/qrcode-generator-2.0.4.js").read_text("utf-8")
    device = static.joinpath("device-wallet.js").read_text("utf-8")
    return page.replace("{{QRCODE_JS}}", qr).replace("{{DEVICE_WALLET_JS}}", device)


@cache
def _worker() -> str:
    """The service worker, named after the page it keeps: a new deployment is a new worker, which the
    browser installs on the next online open and which drops the old one's cache."""
    static = resources.files(__package__).joinpath("static")
    build = hashlib.sha256((_page() + static.joinpath("wallet-sw.js").read_text("utf-8")).encode()).hexdigest()[:16]
    return static.joinpath("wallet-sw.js").read_text("utf-8").replace("{{BUILD}}", build)


@cache
def _unknown_page() -> str:
    return resources.files(__package__).joinpath("static/wallet-unknown.html").read_text("utf-8")


@router.get("/sw.js", include_in_schema=False)
async def wallet_worker() -> Response:
    """The service worker (scope ``/demo/wallet/``); never cached by HTTP, so that updates are seen at once."""
    headers = {"Cache-Control": "no-cache", "Service-Worker-Allowed": "/demo/wallet/"}
    return Response(_worker(), media_type="text/javascript", headers=headers)


@router.get("/icon-{size}.png", include_in_schema=False)
async def wallet_icon(size: Annotated[int, Path(ge=192, le=512)]) -> Response:
    """The app's icon, 192 or 512 pixels square."""
    if size not in ICON_SIZES:
        return Response(status_code=404)
    return Response(icon_png(size), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/{subject}/manifest.webmanifest", include_in_schema=False)
async def wallet_manifest(subject: SubjectId) -> Response:
    """The web app manifest of one person's wallet: installing it puts that page on the home screen."""
    manifest = {
        "name": "随申码 Suishenma",
        "short_name": "随申码",
        "description": "随申码：离线也能亮码 · Suishenma: shows your code, even offline",
        "lang": "zh-CN",
        "start_url": f"/demo/wallet/{subject}",
        "scope": f"/demo/wallet/{subject}",
        "id": f"/demo/wallet/{subject}",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#f2f4f7",
        "theme_color": "#1a9e3f",
        "icons": [
            {"src": f"/demo/wallet/icon-{n}.png", "sizes": f"{n}x{n}", "type": "image/png", "purpose": "any"}
            for n in ICON_SIZES
        ],
    }
    body = json.dumps(manifest, ensure_ascii=False)
    return Response(body, media_type="application/manifest+json", headers={"Cache-Control": "no-cache"})


@router.get("/{subject}/status")
async def wallet_status(subject: SubjectId, request: Request) -> Response:
    """The person's status as the issuer holds it now, for the page to compare with the one its codes carry
    (``If-None-Match``: 304 while unchanged)."""
    ctx: Context = request.app.state.ctx
    now = ctx.now()
    rec = ctx.service.subject(subject)
    lapsed = rec.status_until is not None and rec.status_until <= now
    state = {"status": rec.status, "until": rec.status_until, "lapsed": lapsed}
    etag = '"' + hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(json.dumps({**state, "now": now}), media_type="application/json", headers=headers)


@router.get("/{subject}", response_class=HTMLResponse, responses={404: {"content": {"text/html": {}}}})
async def wallet_page(subject: str, request: Request) -> Response:
    """The page: QR in the status colour, masked name, a live clock and a countdown, and a large-text
    switch. Where the browser has WebCrypto it keeps its own key and a batch of slot credentials (K, the
    issuer's ``device_batch``, each with a key of its own) and makes device-bound codes itself, offline;
    otherwise it fetches each code from here. An unknown subject, or a link cut short, gets a
    page saying so (404)."""
    ctx: Context = request.app.state.ctx
    headers = {"Cache-Control": "no-store"}
    try:
        if not re.fullmatch(SUBJECT_PATTERN, subject):
            raise NotFound(Problem.NO_SUBJECT, subject=subject)
        ctx.service.subject(subject)
    except NotFound:
        return HTMLResponse(_unknown_page(), 404, headers)
    # K, the credentials of a day's batch, is read at each request: the cached page holds only the placeholder.
    batch = str(ctx.service.settings.device_batch)
    return HTMLResponse(_page().replace("{{SUBJECT}}", subject).replace("{{DEVICE_BATCH}}", batch), headers=headers)


@router.post("/{subject}/device-credential")
async def wallet_device_credential(subject: SubjectId, body: DeviceCredentialRequest, request: Request) -> Response:
    """A batch of slot credentials for the page's keys (the demo's stand-in for the app's authenticated call)."""
    ctx: Context = request.app.state.ctx
    now = ctx.now()
    batch = ctx.service.issue_device_batch(
        subject, body.jwk, body.keys, now, ACTOR, start=body.start, identity=body.identity
    )
    ctx.metrics.inc("suishenma_codes_minted_total", 'type="device_credential"', len(batch.credentials))
    return as_json({**batch_json(batch, ctx.service.settings.slot), "masked_name": batch.masked_name, "now": now})


@router.get("/{subject}/code")
async def wallet_code(subject: SubjectId, request: Request) -> Response:
    """A fresh venue code for the page, with its QR as SVG."""
    ctx: Context = request.app.state.ctx
    minted = ctx.service.mint_dynamic(subject, "venue", ctx.now(), ACTOR)
    ctx.metrics.inc("suishenma_codes_minted_total", 'type="dynamic"')
    return as_json(
        {
            "code": minted.code,
            "expires_at": minted.expires_at,
            "now": ctx.now(),
            "status": minted.status,
            "masked_name": minted.masked_name,
            "svg": svg(qr_matrix(minted.code)),
        }
    )
