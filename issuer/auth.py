"""API keys (random, stored only as SHA-256 hashes), scopes, and a per-key token-bucket rate limit."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .problems import InputError

SCOPES = ("enrol", "status", "mint", "revoke", "kiosk", "admin")
KEY_PREFIX = "ssk_"
MAX_KEY_CHARS = 128


def new_api_key() -> str:
    """A fresh key: 32 random bytes. Shown once; only its hash is stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> bytes:
    # A plain hash suffices: keys carry 256 random bits, so there is nothing to brute-force.
    return hashlib.sha256(key.encode("utf-8", "replace")).digest()


def parse_scopes(text: str) -> list[str]:
    """``"mint,enrol"`` -> ``["enrol", "mint"]``.

    Raises:
        ValueError: an unknown scope, or none at all.
    """
    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InputError(
            f"scopes must be among {', '.join(SCOPES)}; got {text!r}",
            f"权限须为 {', '.join(SCOPES)} 之一或其组合；收到的是 {text!r}",
        )
    return scopes


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token bucket per key: ``rate`` requests a second on average, bursts of ``burst_s`` seconds' worth."""

    def __init__(self, burst_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[int, _Bucket] = {}
        self._burst_s = burst_s
        self._clock = clock

    def take(self, key_id: int, rate: float) -> int:
        """Spend one token; return 0 when allowed, else the seconds to wait (for ``Retry-After``)."""
        now = self._clock()
        cap = max(1.0, rate * self._burst_s)
        b = self._buckets.get(key_id)
        if b is None:
            b = self._buckets[key_id] = _Bucket(cap, now)
        b.tokens = min(cap, b.tokens + (now - b.stamp) * rate)
        b.stamp = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - b.tokens) / rate))
