"""The demo wallet: what the mobile app shows. Enabled with ``demo_wallet`` only; it mints without a key."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import HTMLResponse, Response

from .api import as_json
from .context import Context
from .models import DeviceCredentialRequest
from .render import qr_matrix, svg

router = APIRouter(prefix="/demo/wallet", tags=["demo"])
SubjectId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
ACTOR = "demo-wallet"


@cache
def _page() -> str:
    """The page with its two scripts inlined: once loaded, it needs nothing more from the network."""
    static = resources.files(__package__).joinpath("static")
    page = static.joinpath("wallet.html").read_text("utf-8")
    qr = static.joinpath("vendor/qrcode-generator-2.0.4.js").read_text("utf-8")
    device = static.joinpath("device-wallet.js").read_text("utf-8")
    return page.replace("{{QRCODE_JS}}", qr).replace("{{DEVICE_WALLET_JS}}", device)


@router.get("/{subject}", response_class=HTMLResponse)
async def wallet_page(subject: SubjectId, request: Request) -> Response:
    """The page: QR, colour, masked name and a countdown. Where the browser has WebCrypto it keeps its own
    key and makes device-bound codes itself, offline; otherwise it fetches each code from here."""
    ctx: Context = request.app.state.ctx
    ctx.service.subject(subject)  # 404 for an unknown subject
    return HTMLResponse(_page().replace("{{SUBJECT}}", subject), headers={"Cache-Control": "no-store"})


@router.post("/{subject}/device-credential")
async def wallet_device_credential(subject: SubjectId, body: DeviceCredentialRequest, request: Request) -> Response:
    """A day credential for the page's own key (the demo's stand-in for the app's authenticated call)."""
    ctx: Context = request.app.state.ctx
    now = ctx.now()
    minted = ctx.service.issue_device_credential(subject, body.jwk, now, ACTOR, identity=body.identity)
    ctx.metrics.inc("suishenma_codes_minted_total", 'type="device_credential"')
    return as_json(
        {
            "credential": minted.code,
            "expires_at": minted.expires_at,
            "status_index": minted.status_index,
            "status": minted.status,
            "masked_name": minted.masked_name,
            "now": now,
        }
    )


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
