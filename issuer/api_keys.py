"""API keys (random, stored only as SHA-256 hashes), scopes, and a per-key token-bucket rate limit."""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Callable

from issuer.errors import InputError, Problem
from issuer.storage import Storage

SCOPES = ("enrol", "status", "mint", "revoke", "kiosk", "trace", "admin")
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
        raise InputError(Problem.UNKNOWN_SCOPES, scopes=", ".join(SCOPES), text=text)
    return scopes


class RateLimiter:
    """Token bucket per API key, shared by every worker and node: ``rate`` requests a second on average,
    bursts of ``burst_s`` seconds' worth.

    The bucket lives in the database (``Storage.rate_take``); each worker leases tokens from it a tenth of a
    second's worth at a time and spends them locally, so a busy key costs about ten small writes a second
    per worker rather than one per request. The most a key can get beyond its rate is one unspent lease
    per worker. The clock is the wall clock (shared across nodes), injected by tests.
    """

    LEASE_S = 0.1

    def __init__(self, storage: Storage, burst_s: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._held: dict[int, float] = {}
        self._burst_s = burst_s
        self._clock = clock
        self._lock = threading.Lock()

    def take(self, key_id: int, rate: float) -> int:
        """Spend one token; return 0 when allowed, else the seconds to wait (for ``Retry-After``).

        Raises: StorageUnavailable when a new lease is needed and the database is away.
        """
        with self._lock:
            if self._held.get(key_id, 0.0) >= 1.0:
                self._held[key_id] -= 1.0
                return 0
        burst = max(1.0, rate * self._burst_s)
        want = max(1.0, min(burst, float(int(rate * self.LEASE_S))))
        granted, left = self._storage.rate_take(key_id, rate, burst, want, self._clock())
        with self._lock:
            held = self._held.get(key_id, 0.0) + granted
            if held >= 1.0:
                self._held[key_id] = held - 1.0
                return 0
            self._held[key_id] = held
        return max(1, math.ceil((1.0 - left) / rate))
