"""The demo wallet: what the mobile app shows. Enabled with ``demo_wallet`` only; it mints without a key."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import HTMLResponse, Response

from .api import as_json
from .context import Context
from .render import qr_matrix, svg

router = APIRouter(prefix="/demo/wallet", tags=["demo"])
SubjectId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
ACTOR = "demo-wallet"


@router.get("/{subject}", response_class=HTMLResponse)
async def wallet_page(subject: SubjectId, request: Request) -> Response:
    """The page: QR, colour, masked name and a countdown; it fetches the next code before this one expires."""
    ctx: Context = request.app.state.ctx
    ctx.service.subject(subject)  # 404 for an unknown subject
    page = resources.files(__package__).joinpath("static/wallet.html").read_text("utf-8")
    return HTMLResponse(page.replace("{{SUBJECT}}", subject), headers={"Cache-Control": "no-store"})


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
