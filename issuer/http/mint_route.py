"""The busiest route, ``POST /v1/subjects/{subject}/codes``: its checks, defined once, and its answer.

FastAPI's dependency solving, body model and nested-router matching cost about 130 µs a request on this
route, more than the mint itself (about 85 µs). So the route is a plain Starlette route matched before
FastAPI's, and ``routes.py`` declares the same handler for the OpenAPI schema (``OPENAPI`` below). The checks
come in the order FastAPI's would and answer as its validation would: the key and its scope and rate first
(401, 403, 429), then the path and the body (422 naming the field).
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from issuer.http.bodies import SUBJECT_PATTERN, MintRequest
from issuer.http.callers import Caller, as_json, authorise
from issuer.http.problems import ApiError
from issuer.qr_images import png, qr_matrix, svg
from issuer.service import Scenario

PATH = "/v1/subjects/{subject}/codes"
SCOPE = "mint"
SCENARIOS: tuple[str, ...] = get_args(Scenario)
FORMATS = ("json", "png", "svg")
_SUBJECT = re.compile(SUBJECT_PATTERN)

# What FastAPI would have documented from a declared path parameter, query parameter and body model.
OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "subject",
            "in": "path",
            "required": True,
            "description": "Pseudonymous subject id",
            "schema": {"type": "string", "pattern": SUBJECT_PATTERN},
        },
        {
            "name": "format",
            "in": "query",
            "required": False,
            "description": "json, png or svg; overrides the Accept header",
            "schema": {"type": "string", "enum": list(FORMATS)},
        },
    ],
    "requestBody": {"content": {"application/json": {"schema": MintRequest.model_json_schema()}}, "required": True},
}


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError("invalid_input", [{"field": field, "problem": problem}])


def subject_of(request: Request) -> str:
    """The path's subject id. Raises: ApiError (invalid_input) naming ``path.subject``."""
    subject: str = request.path_params["subject"]
    if not _SUBJECT.fullmatch(subject):
        raise _invalid("path.subject", f"String should match pattern '{SUBJECT_PATTERN}'")
    return subject


def scenario_of(body: bytes) -> Scenario:
    """The ``scenario`` of a mint request body (``{"scenario": ...}``, default venue).

    Raises: ApiError (invalid_input) naming the field: no body, not a JSON object, another key, or an
    unknown scenario.
    """
    if not body.strip():
        raise _invalid("body", "Field required")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("body", "JSON decode error") from None
    if not isinstance(data, dict):
        raise _invalid("body", "Input should be a valid dictionary or object")
    for key in data:
        if key != "scenario":
            raise _invalid(f"body.{key}", "Extra inputs are not permitted")
    scenario = data.get("scenario", "venue")
    if scenario not in SCENARIOS:
        raise _invalid("body.scenario", "Input should be " + ", ".join(repr(s) for s in SCENARIOS))
    return scenario  # type: ignore[no-any-return]


def answer_kind(fmt: str | None, accept: str) -> str:
    """json, png or svg: ``?format=`` first, else the ``Accept`` header.

    Raises: ApiError: invalid_input (an unknown format), not_acceptable (nothing we can answer with).
    """
    if fmt is not None:
        if fmt not in FORMATS:
            raise _invalid("query.format", "must be json, png or svg")
        return fmt
    for t in (part.split(";")[0].strip().lower() for part in accept.split(",")):
        if t in ("application/json", "*/*", "application/*", ""):
            return "json"
        if t in ("image/png", "image/*"):
            return "png"
        if t == "image/svg+xml":
            return "svg"
    raise ApiError("not_acceptable", {"accept": accept[:200]})


async def mint_code(request: Request) -> Response:
    """A fresh dynamic code for the phone: JSON, or the QR as PNG or SVG (``Accept`` or ``?format=``).

    Raises: ApiError (401, 403, 429, 422, 406); the service's errors (404, 409, 503).
    """
    caller = await authorise(request, SCOPE)
    subject = subject_of(request)
    scenario = scenario_of(await request.body())
    return _answer(caller, subject, scenario, request)


mint_code.required_scope = SCOPE  # type: ignore[attr-defined]  # read by app.bearer_openapi


def _answer(caller: Caller, subject: str, scenario: Scenario, request: Request) -> Response:
    ctx = caller.ctx
    kind = answer_kind(request.query_params.get("format"), request.headers.get("accept", "application/json"))
    minted = ctx.service.mint_dynamic(subject, scenario, ctx.now(), caller.actor)
    ctx.metrics.inc("suishenma_codes_minted_total", 'type="dynamic"')
    if kind == "json":
        return as_json({"code": minted.code, "expires_at": minted.expires_at})
    headers = {"X-Code-Expires-At": str(minted.expires_at), "Cache-Control": "no-store"}
    if kind == "png":
        return Response(png(qr_matrix(minted.code)), media_type="image/png", headers=headers)
    return Response(svg(qr_matrix(minted.code)), media_type="image/svg+xml", headers=headers)


route = Route(PATH, mint_code, methods=["POST"])
