"""The verifier's Prometheus metrics, one renderer for the local service and the kiosk (README: metrics).

``suishenma-verifier serve`` (GET /metrics) and the kiosk (``suishenma-scanner --metrics-port N``) export the
same families, so one set of alert rules and one dashboard serve both::

    from verifier.ops_metrics import SyncFailures, VerdictCounters, render

    counters, failures = VerdictCounters(), SyncFailures()
    verdict = verifier.verify(text)
    counters.verdict(verdict.decision, verdict.reason, verdict.elapsed_ms / 1000)
    failures.count(verifier.sync())            # after every sync, wherever it runs
    text = render(verifier, counters, failures)  # the body of GET /metrics (text/plain; version=0.0.4)

``VerdictCounters`` and ``SyncFailures`` are thread-safe: a frame loop or request handlers count verdicts,
a background thread counts syncs, and a scrape renders, all at once. ``render`` reads the verifier's health
and its held lists as of one instant (``now``, default the wall clock); ``list_gauges`` gives the list ages
alone; ``family`` formats one more family for a caller's own metrics (the service appends its request
counters with it).

Families (``suishenma_verifier_`` omitted):

- ``verdicts_total{decision,reason}`` counter;
- ``list_age_seconds{kind,list}`` gauge: seconds since the list was last confirmed fresh (``kind`` is
  ``trust`` or ``status``; ``list`` is ``trust`` for the trust list, the issuer for a status list);
- ``list_max_age_seconds{kind,list}`` gauge: the list is stale, and the codes that need it are refused,
  once its age exceeds this: the scenario's ``max_list_age_s``, or less when the list expires sooner;
- ``clock_skew_seconds`` gauge (this clock minus the issuers', no sample until a sync measured it);
  ``clock_wrong``, ``stale``, ``offline`` gauges 1/0 (as ``Verifier.health``; ``offline`` also when the latest
  sync raised instead of reporting);
- ``sync_failures_total{reason}`` counter: one per problem a sync reported, by its ``SyncReason`` (every
  reason present from the start, at 0);
- ``last_sync_success_timestamp_seconds`` gauge: POSIX time of the last list sync without an error (0: never);
- ``scan_log_pending_records`` gauge: scan-log records not yet uploaded to the issuer.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._verifier import Verifier
from .sync import SyncReason, SyncReport
from .trust_state import TRUST, status_name

PREFIX = "suishenma_verifier_"
CONTENT_TYPE = "text/plain; version=0.0.4"


class VerdictCounters:
    """Verdicts by decision and reason, and the seconds spent deciding them; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._verdicts: Counter[tuple[str, str]] = Counter()
        self._seconds = 0.0

    def verdict(self, decision: str, reason: str, seconds: float) -> None:
        """Count one verdict (``Decision`` and ``VerdictReason`` members are strings) that took ``seconds``."""
        with self._lock:
            self._verdicts[(str(decision), str(reason))] += 1
            self._seconds += seconds

    def snapshot(self) -> tuple[dict[tuple[str, str], int], float]:
        """The counts by (decision, reason), and the total seconds, as of now."""
        with self._lock:
            return dict(self._verdicts), self._seconds


class SyncFailures:
    """Sync problems by typed reason (``SyncReason``); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[SyncReason] = Counter()
        self._last_crashed = False

    def count(self, report: SyncReport) -> None:
        """Count every problem of one sync's ``report``: a region down and an upload refused in the same sync
        are two failures, a sync that reported none counts nothing."""
        with self._lock:
            self._counts.update(p.reason for p in report.problems)
            self._last_crashed = False

    def crashed(self) -> None:
        """Count a sync that raised instead of reporting (``SyncReason.INTERNAL``): it failed as surely as one
        whose report lists problems, and the sync-failing alert must see it."""
        with self._lock:
            self._counts[SyncReason.INTERNAL] += 1
            self._last_crashed = True

    @property
    def last_crashed(self) -> bool:
        """Whether the latest sync counted here raised: the verifier's own record still shows the sync before."""
        with self._lock:
            return self._last_crashed

    def snapshot(self) -> dict[SyncReason, int]:
        """The count of every reason (0 for those never seen)."""
        with self._lock:
            return {reason: self._counts[reason] for reason in SyncReason}


@dataclass(frozen=True)
class ListGauge:
    kind: str  # "trust" or "status"
    list: str  # "trust", or the issuer of a status list
    age_s: int  # since an issuer last confirmed it
    max_age_s: int  # stale once ``age_s`` exceeds this


def list_gauges(verifier: Verifier, now: float | None = None) -> list[ListGauge]:
    """The age, and the age past which ``verifier`` stops trusting it, of every list it holds.

    A list is stale (``Policy.is_stale``) when its age exceeds the scenario's ``max_list_age_s`` or once it
    expires, whichever comes first; in whole seconds, expiry at ``checked_at + e`` means stale once the age
    exceeds ``e - 1``.
    """
    at = int(time.time() if now is None else now)
    with verifier.store.lock:  # the references Verifier.health reads: adopt replaces them, never mutates
        held, status = verifier.state.held, verifier.state.status
    limit = verifier.policy.max_list_age_s
    names = [("trust", TRUST, TRUST)] + [("status", issuer, status_name(issuer)) for issuer in status]
    out = []
    for kind, label, name in names:
        h = held.get(name)
        if h is not None:
            out.append(ListGauge(kind, label, at - h.checked_at, min(limit, h.expires_at - h.checked_at - 1)))
    return out


def render(
    verifier: Verifier, counters: VerdictCounters, sync_failures: SyncFailures, *, now: float | None = None
) -> str:
    """The verifier families in Prometheus text format (``CONTENT_TYPE``), as of ``now`` (default: now).

    Raises:
        sqlite3.Error: the state's database cannot be read (``Verifier.health``).
    """
    at = int(time.time() if now is None else now)
    health = verifier.health(now=at)
    lists = list_gauges(verifier, at)
    verdicts, _ = counters.snapshot()
    out: list[str] = []
    out += family(
        "verdicts_total",
        "counter",
        "Verdicts by decision and reason.",
        [({"decision": d, "reason": r}, n) for (d, r), n in sorted(verdicts.items())],
    )
    out += family(
        "list_age_seconds",
        "gauge",
        "Seconds since an issuer last confirmed the list fresh.",
        [({"kind": g.kind, "list": g.list}, g.age_s) for g in lists],
    )
    out += family(
        "list_max_age_seconds",
        "gauge",
        "The list is stale once its age exceeds this (the scenario's limit, or less when it expires sooner).",
        [({"kind": g.kind, "list": g.list}, g.max_age_s) for g in lists],
    )
    skew: list[tuple[Mapping[str, str], float]] = [] if health.clock_skew_s is None else [({}, health.clock_skew_s)]
    out += family("clock_skew_seconds", "gauge", "This clock minus the issuers', as last measured.", skew)
    out += family("clock_wrong", "gauge", "1 when the clock is off: every code is refused.", [({}, health.clock_wrong)])
    out += family("stale", "gauge", "1 when a list this scenario relies on is stale or missing.", [({}, health.stale)])
    offline = health.offline or sync_failures.last_crashed
    out += family("offline", "gauge", "1 when the last list sync failed, or none succeeded.", [({}, offline)])
    out += family(
        "sync_failures_total",
        "counter",
        "Sync problems by reason.",
        [({"reason": r.value}, n) for r, n in sync_failures.snapshot().items()],
    )
    out += family(
        "last_sync_success_timestamp_seconds",
        "gauge",
        "POSIX time of the last list sync without an error (0: never).",
        [({}, health.last_successful_sync or 0)],
    )
    out += family(
        "scan_log_pending_records",
        "gauge",
        "Scan-log records not yet uploaded to the issuer.",
        [({}, health.pending_uploads)],
    )
    return "\n".join(out) + "\n"


def family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float | int | bool]]
) -> list[str]:
    """The lines of one family ``suishenma_verifier_<name>``: HELP, TYPE, then one line per sample."""
    full = PREFIX + name
    lines = [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{full}{{{inner}}} {_number(value)}" if inner else f"{full} {_number(value)}")
    return lines


def _escape(value: str) -> str:
    """A label value as the text format needs it: list ids come from signed lists, but are still text."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int | bool) -> str:
    if isinstance(value, bool | int):
        return str(int(value))
    return repr(value)  # full precision: "%g" would round a timestamp to six digits
