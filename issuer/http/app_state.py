"""Per-app state the routes share: the service, the clock, API-key lookups and the rate limiter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from issuer.api_keys import RateLimiter, hash_api_key
from issuer.http.metrics import Metrics
from issuer.service import IssuerService
from issuer.storage import ApiKeyRecord

KEY_CACHE_S = 5.0  # a revoked key stops working within this many seconds


@dataclass
class Principal:
    """The caller: the API key's name is the actor recorded in the audit log."""

    key_id: int
    name: str
    scopes: frozenset[str]


@dataclass
class Context:
    service: IssuerService
    metrics: Metrics
    clock: Callable[[], float]
    limiter: RateLimiter
    monotonic: Callable[[], float] = time.monotonic  # paces the API-key cache

    _keys: dict[bytes, tuple[ApiKeyRecord | None, float]] = field(default_factory=dict)

    def now(self) -> int:
        return int(self.clock())

    def lookup_key(self, key: str) -> ApiKeyRecord | None:
        digest = hash_api_key(key)
        hit = self._keys.get(digest)
        mono = self.monotonic()
        if hit is not None and mono - hit[1] < KEY_CACHE_S:
            return hit[0]
        record = self.service.storage.api_key_by_hash(digest)
        if len(self._keys) > 10_000:  # unknown keys must not grow the cache without bound
            self._keys.clear()
        self._keys[digest] = (record, mono)
        return record
