"""Who is calling: the API key in the ``Authorization`` header, its scopes and its rate (401, 403, 429)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from issuer.api_keys import MAX_KEY_CHARS
from issuer.http.app_state import Context, Principal
from issuer.http.problems import ApiError


async def public(request: Request) -> Context:
    """Dependency of the public routes: the app's context, no key needed."""
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(public)]


async def authorise(request: Request, scope: str) -> Caller:
    """The caller, whose key must hold ``scope`` (``admin`` holds all) and be within its rate.

    Raises: ApiError: unauthorized (401), forbidden (403), rate_limited (429).
    """
    ctx: Context = request.app.state.ctx
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_CHARS:
        raise ApiError("unauthorized", headers={"WWW-Authenticate": "Bearer"})
    record = ctx.lookup_key(key.strip())
    if record is None or record.revoked:
        raise ApiError("unauthorized", headers={"WWW-Authenticate": "Bearer"})
    if scope not in record.scopes and "admin" not in record.scopes:
        raise ApiError("forbidden", {"needs": scope, "has": sorted(record.scopes)})
    wait = ctx.limiter.take(record.id, record.rate_per_s)
    if wait:
        raise ApiError("rate_limited", {"retry_after_s": wait}, {"Retry-After": str(wait)})
    return Caller(ctx, Principal(record.id, record.name, record.scopes))


def require(scope: str) -> object:
    """Dependency: the app context and the caller (``authorise``).

    The header is read here rather than through ``HTTPBearer``: one dependency instead of two on every
    authenticated request. The OpenAPI schema declares the scheme (see ``app.bearer_openapi``).
    """

    async def check(request: Request) -> Caller:
        return await authorise(request, scope)

    check.required_scope = scope  # type: ignore[attr-defined]  # read by app.bearer_openapi
    return Depends(check)


@dataclass(frozen=True)
class Caller:
    ctx: Context
    who: Principal

    @property
    def actor(self) -> str:
        return self.who.name


def as_json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status, media_type="application/json")
