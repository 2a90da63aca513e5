"""Every error the API returns, made in one place: an error code, an HTTP status, and the catalogue's words.

The issuer's own errors (``issuer.errors``) and the core's usage and key-file errors become answers here;
routes raise ``ApiError`` for what only HTTP knows (a missing key, a scope, a rate, a body).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from issuer.errors import (
    CATALOGUE,
    AlreadyEnrolled,
    CallerError,
    ConfigError,
    Conflict,
    DeviceLimit,
    DeviceRevoked,
    IssuerError,
    NotFound,
    Problem,
    StatusExpired,
    StorageUnavailable,
)
from suishenma import KeyFileError, UsageError

log = logging.getLogger("issuer")

STATUS: dict[Problem, int] = {
    Problem.UNAUTHORIZED: 401,
    Problem.FORBIDDEN: 403,
    Problem.KIOSK_MISMATCH: 403,
    Problem.NOT_FOUND: 404,
    Problem.DELTA_UNAVAILABLE: 404,
    Problem.NOT_ACCEPTABLE: 406,
    Problem.CONFLICT: 409,
    Problem.ALREADY_ENROLLED: 409,
    Problem.DEVICE_LIMIT: 409,
    Problem.DEVICE_REVOKED: 409,
    Problem.STATUS_EXPIRED: 409,
    Problem.STATUS_ENDS_IN_SLOT: 409,
    Problem.BATCH_START_OUT_OF_RANGE: 422,
    Problem.PSEUDONYM_MALFORMED: 422,
    Problem.TRACE_REASON_MISSING: 422,
    Problem.TRACE_TOO_MANY: 422,
    Problem.BODY_TOO_LARGE: 413,
    Problem.INVALID_INPUT: 422,
    Problem.BATCH_REFUSED: 422,
    Problem.RATE_LIMITED: 429,
    Problem.INTERNAL: 500,
    Problem.UNAVAILABLE: 503,
    Problem.DATABASE_UNAVAILABLE: 503,
}

# Which answer an error gets, the most specific class first (StatusExpired and AlreadyEnrolled are Conflicts).
_ANSWERS: tuple[tuple[type[Exception], Problem], ...] = (
    (StatusExpired, Problem.STATUS_EXPIRED),
    (AlreadyEnrolled, Problem.ALREADY_ENROLLED),
    (DeviceLimit, Problem.DEVICE_LIMIT),
    (DeviceRevoked, Problem.DEVICE_REVOKED),
    (NotFound, Problem.NOT_FOUND),
    (Conflict, Problem.CONFLICT),
    (CallerError, Problem.INVALID_INPUT),
    (UsageError, Problem.INVALID_INPUT),
    (StorageUnavailable, Problem.DATABASE_UNAVAILABLE),
    (ConfigError, Problem.UNAVAILABLE),
    (KeyFileError, Problem.UNAVAILABLE),
)


class ApiError(CallerError):
    """What only HTTP knows is wrong with a request; ``problem`` must be one of ``STATUS``."""

    def __init__(self, code: Problem | str, detail: object = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(Problem(code), detail)
        self.headers = dict(headers or {})


def error_response(code: Problem | str, detail: object = None, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON answer for ``code``: ``{"error", "message_zh", "message_en", "detail"}``."""
    problem = Problem(code)
    zh, en = CATALOGUE[problem]
    body = {"error": problem.value, "message_en": en, "message_zh": zh, "detail": detail}
    return Response(json.dumps(body, ensure_ascii=False), STATUS[problem], headers, media_type="application/json")


def answer_for(exc: Exception) -> Problem:
    """The API error code an exception is answered with (``internal`` for anything not raised on purpose)."""
    if isinstance(exc, IssuerError) and exc.problem in STATUS:
        return exc.problem
    return next((code for kind, code in _ANSWERS if isinstance(exc, kind)), Problem.INTERNAL)


async def problem_response(request: Request, exc: Exception) -> Response:
    """The exception handler for every error raised on purpose. The log has the cause and the path; an
    answer that the issuer cannot sign names only the reason code (``/healthz`` says the same to anyone)."""
    code = answer_for(exc)
    if isinstance(exc, ApiError):
        return error_response(code, exc.detail, exc.headers)
    if code is Problem.DATABASE_UNAVAILABLE:
        log.error("database unavailable in %s: %s", request.url.path, exc)
        return error_response(code)
    if code is Problem.UNAVAILABLE:
        log.error("cannot sign in %s: %s: %s", request.url.path, type(exc).__name__, exc)
        reason = exc.problem if isinstance(exc, IssuerError) else None
        return error_response(code, {"reason": str(reason)} if reason else None)
    if isinstance(exc, UsageError):
        return error_response(code, exc.detail)
    if isinstance(exc, IssuerError) and exc.detail is not None:
        return error_response(code, exc.detail)
    return error_response(code, str(exc))
