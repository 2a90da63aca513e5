"""Prometheus text exposition (format 0.0.4) of the issuer: what it did, how fast, and whether it can work.

Families (each with its HELP and TYPE lines):

- counters: ``suishenma_codes_minted_total{type}`` (every kind the issuer hands out: ``dynamic``,
  ``offline``, ``device_credential``; each at 0 from the start so that ``rate()`` has a series),
  ``suishenma_scan_records_received_total{outcome}``, ``suishenma_http_responses_total{endpoint,code}`` (a series
  appears with its first response: the codes are not known before), ``suishenma_http_errors_total{endpoint}``
  (at 0 from the start for every endpoint of the app and ``unmatched``, so the first 5xx is a rise that
  ``rate()`` sees), ``suishenma_internal_errors_total``;
- histograms: ``suishenma_http_request_seconds{endpoint}``; ``suishenma_issuer_signing_seconds{kind}``, the
  signing call alone (``issuer.signing_times``: dynamic, offline, device_credential, status_list, timestamp,
  trust_list, audit_checkpoint);
- gauges, evaluated when scraped: ``suishenma_issuer_can_sign`` (the check ``/healthz`` makes, which looks at
  the key file's ``stat`` and opens it again only when it changed; a PKCS#11 key is checked with one signature),
  ``suishenma_issuer_database_up``, and while the database answers ``suishenma_issuer_audit_unanchored_rows``,
  ``suishenma_issuer_audit_lag_seconds``, ``suishenma_issuer_audit_checkpoint_timestamp_seconds`` (only once
  a checkpoint exists; it stays old while the log does not grow) and ``suishenma_scan_records_stored`` (the
  last count, made in the background every 5 minutes, never during a scrape: absent until the first one).

``/metrics`` answers 200 whatever is broken: a database that does not answer gives ``database_up 0`` and leaves
out the families read from it; a key that cannot sign gives ``can_sign 0``.

Several workers (``serve --workers N``): each process counts its own requests and signatures, and whichever
answers a scrape reports the sum over all the workers of this ``serve`` (``issuer.http.worker_metrics``: each
publishes a snapshot to a shared folder at most every second and on its own scrapes). The other workers'
part can be up to about a second old; totals never go down while the ``serve`` runs, even when a worker dies
and is replaced, a snapshot cannot be written, or another ``serve`` of the same issuer folder starts. The
gauges are read by the answering worker alone (they are the same in every worker).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from issuer.signing_health import SigningHealth
from issuer.signing_times import BUCKETS as SIGNING_BUCKETS
from issuer.signing_times import SIGNING_TIMES, KindTimes, SigningTimes
from issuer.storage import Anchoring, Storage

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CODE_TYPES = ("dynamic", "offline", "device_credential")
SCAN_COUNT_EVERY = 300  # seconds between counts of the scan-log table (a full count, see BackgroundCount)

log = logging.getLogger(__name__)

# name: (type, help), in the order they are rendered
COUNTERS: dict[str, tuple[str, str]] = {
    "suishenma_codes_minted_total": ("counter", "Codes and device credentials issued, by type."),
    "suishenma_scan_records_received_total": ("counter", "Kiosk verification records received, by outcome."),
    "suishenma_http_responses_total": ("counter", "HTTP responses by endpoint and status code."),
    "suishenma_http_errors_total": ("counter", "HTTP responses with a 5xx status."),
    "suishenma_internal_errors_total": ("counter", "Requests that failed with an unexpected error."),
}


@dataclass(frozen=True)
class Gauges:
    """What a scrape found: ``anchoring`` and ``scan_records_stored`` are None when the database did not answer."""

    now: int
    can_sign: bool
    database_up: bool
    anchoring: Anchoring | None = None
    scan_records_stored: int | None = None


def _in_thread(job: Callable[[], None]) -> None:
    threading.Thread(target=job, name="scan-log-count", daemon=True).start()


class BackgroundCount:
    """A slow count (the scan-log records held) kept off the scrape path: a scrape reads the last count, and
    starts the next one in a background thread when the last started ``every`` seconds ago or more (or the
    clock went back). One count at a time: a count slower than ``every`` delays the next, never piles up.

    A city's scan log holds hundreds of millions of rows: a full ``COUNT(*)`` can outlast Prometheus's scrape
    timeout, and every worker would pay for it on every scrape. A failed count keeps the last value (logged
    once until a count succeeds) and is tried again ``every`` seconds later.
    """

    def __init__(
        self,
        count: Callable[[], int],
        every: int = SCAN_COUNT_EVERY,
        spawn: Callable[[Callable[[], None]], None] = _in_thread,
    ) -> None:
        """``spawn`` runs a count: in a daemon thread by default; tests pass their own to run it when they choose."""
        self._count_fn, self.every, self._spawn = count, every, spawn
        self._lock = threading.Lock()
        self._value: int | None = None
        self._started: int | None = None  # when the last count started, by the scrapes' clock
        self._running = False
        self._failing = False

    @property
    def running(self) -> bool:
        """A count is under way."""
        with self._lock:
            return self._running

    def value(self, now: int) -> int | None:
        """The last count, None until the first one finishes; never waits for the database."""
        with self._lock:
            due = not self._running and (self._started is None or not 0 <= now - self._started < self.every)
            if due:
                self._running, self._started = True, now
            value = self._value
        if due:
            try:
                self._spawn(self._count)
            except Exception as exc:  # RuntimeError: no thread can be started now; try at the next scrape
                log.error("metrics: cannot start counting the scan log: %s: %s", type(exc).__name__, exc)
                with self._lock:
                    self._running, self._started = False, None
        return value

    def _count(self) -> None:
        try:
            n: int | None = self._count_fn()
        except Exception as exc:  # the database does not answer, or the count was cancelled: keep the last
            if not self._failing:
                log.error("metrics: cannot count the scan log: %s: %s", type(exc).__name__, exc)
            self._failing, n = True, None
        else:
            self._failing = False
        with self._lock:
            if n is not None:
                self._value = n
            self._running = False


class Scraper:
    """Evaluates the gauges at scrape time; never raises, so ``/metrics`` never answers 500.

    What a scrape reads from the database is cheap (a few index lookups: the audit anchoring, which also says
    whether the database answers); the scan-log count is read from ``BackgroundCount``.
    """

    def __init__(
        self,
        health: SigningHealth,
        storage: Storage,
        issuer_id: str,
        spawn: Callable[[Callable[[], None]], None] = _in_thread,
    ) -> None:
        """``spawn``: how the scan-log count runs (``BackgroundCount``)."""
        self.health, self.storage, self.issuer_id = health, storage, issuer_id
        self._db_was_up = True
        self.scan_records = BackgroundCount(storage.scan_log_count, SCAN_COUNT_EVERY, spawn)

    def gauges(self, now: int) -> Gauges:
        can_sign = self.health.check().ok  # logs a change itself
        try:
            found = self.storage.anchoring(self.issuer_id)
        except Exception as exc:  # StorageUnavailable, or a database error of either driver: the answer is 0
            if self._db_was_up:
                log.error("metrics: the database does not answer: %s: %s", type(exc).__name__, exc)
            self._db_was_up = False
            return Gauges(now, can_sign, database_up=False)
        if not self._db_was_up:
            log.info("metrics: the database answers again")
        self._db_was_up = True
        return Gauges(now, can_sign, True, found, self.scan_records.value(now))


def _number(value: float) -> str:
    # Counters past a million must keep every digit: ``:g`` would print 1.23457e+06.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _histogram(name: str, label: str, series: Iterable[tuple[str, KindTimes]], bounds: tuple[float, ...]) -> list[str]:
    lines = []
    for value, times in series:
        running = 0
        for bound, n in zip((*bounds, float("inf")), times.counts, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'{name}_bucket{{{label}="{value}",le="{le}"}} {running}')
        lines.append(f'{name}_sum{{{label}="{value}"}} {times.total:.6f}')
        lines.append(f'{name}_count{{{label}="{value}"}} {running}')
    return lines


def _gauge(name: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]


@dataclass(frozen=True)
class Snapshot:
    """What one worker counted, or the sum over workers: counter values by (family, labels), and the request
    (by endpoint) and signing (by kind) histograms."""

    counters: Mapping[tuple[str, str], float]
    requests: Mapping[str, KindTimes]
    signing: Mapping[str, KindTimes]


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The sum of workers' snapshots: counters add by series, histograms bucket by bucket.

    Raises:
        ValueError: two histograms of one series have different buckets (``KindTimes.plus``).
    """
    counters: dict[tuple[str, str], float] = defaultdict(float)
    requests: dict[str, KindTimes] = {}
    signing: dict[str, KindTimes] = {}
    for snap in snapshots:
        for key, value in snap.counters.items():
            counters[key] += value
        for into, series in ((requests, snap.requests), (signing, snap.signing)):
            for name, times in series.items():
                into[name] = into[name].plus(times) if name in into else times
    return Snapshot(dict(counters), requests, signing)


class Metrics:
    """One worker's counters and histograms, updated on every request.

    A lock makes an update from a threadpool route and a snapshot from the publishing thread safe; it is held
    for a dictionary update, or for the copy a snapshot makes (microseconds), never across any I/O.
    """

    def __init__(self, signing: SigningTimes = SIGNING_TIMES) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], float] = defaultdict(float)
        for code_type in CODE_TYPES:
            self._counters[("suishenma_codes_minted_total", f'type="{code_type}"')] = 0.0
        self._counters[("suishenma_internal_errors_total", "")] = 0.0
        self.signing = signing
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)

    def inc(self, name: str, label: str = "", by: float = 1.0) -> None:
        with self._lock:
            self._counters[(name, label)] += by

    def declare_endpoints(self, endpoints: Iterable[str]) -> None:
        """Start ``suishenma_http_errors_total`` at 0 for these endpoints, so that ``rate()`` sees the first 5xx.

        The app names every route's endpoint when it is built; ``unmatched`` keeps the label set bounded.
        ``suishenma_http_responses_total`` is left to appear with its first response: its ``code`` label is
        not known before.
        """
        with self._lock:
            for endpoint in endpoints:
                self._counters.setdefault(("suishenma_http_errors_total", f'endpoint="{endpoint}"'), 0.0)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            counts = self._hist.get(endpoint)
            if counts is None:
                counts = self._hist[endpoint] = [0] * (len(BUCKETS) + 1)
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sum[endpoint] += seconds
            self._counters[("suishenma_http_responses_total", f'endpoint="{endpoint}",code="{status}"')] += 1
            if status >= 500:
                self._counters[("suishenma_http_errors_total", f'endpoint="{endpoint}"')] += 1

    def snapshot(self) -> Snapshot:
        """A copy of this worker's values, consistent as of one instant."""
        with self._lock:
            counters = dict(self._counters)
            requests = {e: KindTimes(tuple(c), self._sum[e]) for e, c in self._hist.items()}
        return Snapshot(counters, requests, self.signing.snapshot())

    def render(self, gauges: Gauges | None = None) -> str:
        """This worker's exposition alone; the scrape-time gauges only when ``gauges`` is given."""
        return render(self.snapshot(), gauges)


def render(snap: Snapshot, gauges: Gauges | None = None) -> str:
    """The exposition of ``snap`` (one worker's, or a merged one); the scrape-time gauges when given."""
    lines: list[str] = []
    by_family: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (name, label), value in sorted(snap.counters.items()):
        by_family[name].append((label, value))
    families = [*COUNTERS, *sorted(n for n in by_family if n not in COUNTERS)]
    for name in families:
        kind, help_text = COUNTERS.get(name, ("counter", name.removeprefix("suishenma_").replace("_", " ") + "."))
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for label, value in by_family.get(name, []):
            lines.append(f"{name}{{{label}}} {_number(value)}" if label else f"{name} {_number(value)}")
    lines += [
        "# HELP suishenma_http_request_seconds Request latency by endpoint.",
        "# TYPE suishenma_http_request_seconds histogram",
    ]
    lines += _histogram("suishenma_http_request_seconds", "endpoint", sorted(snap.requests.items()), BUCKETS)
    lines += [
        "# HELP suishenma_issuer_signing_seconds Time to sign one item (the signing call alone), by kind.",
        "# TYPE suishenma_issuer_signing_seconds histogram",
    ]
    lines += _histogram("suishenma_issuer_signing_seconds", "kind", sorted(snap.signing.items()), SIGNING_BUCKETS)
    if gauges is not None:
        lines += _render_gauges(gauges)
    return "\n".join(lines) + "\n"


def _render_gauges(g: Gauges) -> list[str]:
    lines = _gauge("suishenma_issuer_can_sign", "1 while the issuer can sign (the check /healthz makes).", g.can_sign)
    lines += _gauge("suishenma_issuer_database_up", "1 while the database answers a read.", g.database_up)
    if g.anchoring is not None:
        a = g.anchoring
        lines += _gauge(
            "suishenma_issuer_audit_unanchored_rows", "Audit rows after the newest checkpoint.", a.unanchored_rows
        )
        lines += _gauge(
            "suishenma_issuer_audit_lag_seconds",
            "Age of the oldest audit row no checkpoint covers (0 when all are covered).",
            a.lag(g.now),
        )
        if a.checkpoint_at is not None:
            lines += _gauge(
                "suishenma_issuer_audit_checkpoint_timestamp_seconds",
                "Unix time the newest audit checkpoint was signed.",
                a.checkpoint_at,
            )
    if g.scan_records_stored is not None:
        lines += _gauge(
            "suishenma_scan_records_stored",
            f"Kiosk verification records held, as last counted (in the background, every {SCAN_COUNT_EVERY} s).",
            g.scan_records_stored,
        )
    return lines
