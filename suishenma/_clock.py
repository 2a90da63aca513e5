"""The only place the core turns text or the wall clock into an instant (DESIGN §7.2)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from .errors import UsageError


def parse_instant(text: str | None) -> int:
    """POSIX seconds of an ISO 8601 instant (naive means UTC); the wall clock when ``None``.

    Raises:
        UsageError: not an ISO 8601 date-time.
    """
    if text is None:
        return int(time.time())
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not an ISO 8601 instant: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def format_instant(ts: int) -> str:
    """ISO 8601 in UTC with a ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
