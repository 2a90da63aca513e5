"""How long each signature takes, by what was signed: the source of ``suishenma_issuer_signing_seconds``.

The places that sign (the service for codes and device credentials, the publisher for trust and status
lists, freshness for timestamps, the anchor for audit checkpoints) wrap the signing call alone in
``timed(kind)``; the HTTP edge renders the histogram. It sits at the foundation so that every layer that
signs can record without importing the HTTP edge.

One histogram per process: a worker's signatures, whichever app or command made them. With several workers
each keeps its own, and the one that answers a scrape adds the others' (``issuer.http.worker_metrics``) with
``KindTimes.plus``. Only signatures that completed are recorded; one that raised (a token pulled out, a key
file gone) shows as ``suishenma_issuer_can_sign`` 0 instead.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Final

# Ed25519 in software signs in about 20 µs, a token (PKCS#11) in 0.15 ms locally and in milliseconds over a
# network; a large status list adds its compression. The bounds span all of these.
BUCKETS: Final = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)

DYNAMIC: Final = "dynamic"
OFFLINE: Final = "offline"
DEVICE_CREDENTIAL: Final = "device_credential"
STATUS_LIST: Final = "status_list"
TIMESTAMP: Final = "timestamp"
TRUST_LIST: Final = "trust_list"
AUDIT_CHECKPOINT: Final = "audit_checkpoint"
KINDS: Final = (DYNAMIC, OFFLINE, DEVICE_CREDENTIAL, STATUS_LIST, TIMESTAMP, TRUST_LIST, AUDIT_CHECKPOINT)


@dataclass(frozen=True)
class KindTimes:
    """One kind's histogram: ``counts[i]`` signatures took at most ``BUCKETS[i]`` seconds and more than the
    bound before it (the last entry: more than every bound); ``total`` seconds in all."""

    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def plus(self, other: KindTimes) -> KindTimes:
        """Both histograms in one: bucket by bucket, and the totals.

        Raises:
            ValueError: the two have different buckets.
        """
        if len(self.counts) != len(other.counts):
            raise ValueError(f"{len(self.counts)} buckets and {len(other.counts)} cannot be added")
        return KindTimes(tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)), self.total + other.total)


class SigningTimes:
    """Thread-safe histograms by kind: signing runs on request threads and on the tickers' threads."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {k: [0] * (len(BUCKETS) + 1) for k in KINDS}
        self._total: dict[str, float] = dict.fromkeys(KINDS, 0.0)

    def observe(self, kind: str, seconds: float) -> None:
        with self._lock:
            counts = self._counts.get(kind)
            if counts is None:
                counts = self._counts[kind] = [0] * (len(BUCKETS) + 1)
                self._total[kind] = 0.0
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._total[kind] += seconds

    @contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        """Record the block's duration under ``kind`` when it completes (not when it raises)."""
        start = self._clock()
        yield
        self.observe(kind, self._clock() - start)

    def snapshot(self) -> dict[str, KindTimes]:
        with self._lock:
            return {k: KindTimes(tuple(c), self._total[k]) for k, c in self._counts.items()}


SIGNING_TIMES = SigningTimes()


def timed(kind: str) -> AbstractContextManager[None]:
    """``with timed(DYNAMIC): code = mint(...)``: the process's histogram records the signature."""
    return SIGNING_TIMES.timed(kind)
