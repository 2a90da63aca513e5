"""Counters summed over the worker processes of one ``serve --workers N``: prometheus_client's multiprocess
mode, made simple.

With N workers on one port a scrape reaches any one of them. Each worker keeps its counters and histograms
in memory (``Metrics``) and publishes a snapshot of them as a small JSON file in the serve's folder
(``var/metrics/<port>/``, mode 0700, files 0600): from a background thread at most every ``PUBLISH_S``
seconds (only when something changed) and whenever it answers a scrape. A file is replaced by rename, so a
reader sees a whole snapshot, old or new. The worker that answers a scrape publishes its own values, adds the
latest file of every other worker, and renders the sum; the gauges it evaluates itself, once.

- Staleness: another worker's part is as old as its last publication, up to about ``PUBLISH_S`` (1 s).
- Totals never go down while the serve runs: a worker's file only grows, what a worker reports it has
  published first, and the file of a worker that died stays in the folder (uvicorn's replacement writes
  under a new name), so its counts stay in the sum. ``serve`` empties the folder when it starts: a restart
  is a counter reset, as Prometheus expects of a restarted process.
- A worker killed outright loses what it counted since its last publication, as a single process would.
- Requests only touch memory: the files are written by the thread and by the scrape (in the threadpool).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Final

from issuer.files import FILE_MODE, private_dir
from issuer.http.metrics import BUCKETS, Metrics, Snapshot, merge
from issuer.settings import Settings
from issuer.signing_times import BUCKETS as SIGNING_BUCKETS
from issuer.signing_times import KindTimes

PUBLISH_S: Final = 1.0
# ``serve --workers N`` names the folder to its workers in this variable.
METRICS_DIR_ENV: Final = "SUISHENMA_SERVE_METRICS_DIR"
FORMAT: Final = 1
PREFIX: Final = "worker-"

log = logging.getLogger(__name__)


def serve_folder(settings: Settings, port: int) -> Path:
    """The folder of the serve on ``port``: one per port, so two serves of one issuer folder keep apart."""
    return settings.path(Path("var") / "metrics" / str(port)).absolute()


def fresh_folder(folder: Path) -> Path:
    """Create ``folder`` (0700) or remove the snapshots a previous serve left in it; ``serve`` calls this
    before its workers start.

    Raises:
        OSError: the folder cannot be created or a file removed.
    """
    private_dir(folder.parent)
    private_dir(folder)
    for child in folder.iterdir():
        if child.name.startswith((PREFIX, "." + PREFIX)):
            child.unlink(missing_ok=True)
    return folder


def to_json(snap: Snapshot) -> bytes:
    """A snapshot as the bytes of its file; the same snapshot gives the same bytes."""

    def hist(series: Any) -> dict[str, list[Any]]:
        return {name: [list(t.counts), t.total] for name, t in sorted(series.items())}

    doc = {
        "format": FORMAT,
        "counters": [[name, label, value] for (name, label), value in sorted(snap.counters.items())],
        "requests": hist(snap.requests),
        "signing": hist(snap.signing),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def from_json(data: bytes) -> Snapshot:
    """The snapshot in a file's bytes.

    Raises:
        ValueError: not a snapshot of this format, or a histogram with other buckets than this version's.
    """
    try:
        doc = json.loads(data)
        if doc["format"] != FORMAT:
            raise ValueError(f"snapshot format {doc['format']!r}, not {FORMAT}")
        counters = {(str(name), str(label)): float(value) for name, label, value in doc["counters"]}

        def hist(series: dict[str, Any], bounds: tuple[float, ...]) -> dict[str, KindTimes]:
            out = {}
            for name, (counts, total) in series.items():
                if len(counts) != len(bounds) + 1:
                    raise ValueError(f"{name}: {len(counts)} buckets, not {len(bounds) + 1}")
                out[str(name)] = KindTimes(tuple(int(c) for c in counts), float(total))
            return out

        return Snapshot(counters, hist(doc["requests"], BUCKETS), hist(doc["signing"], SIGNING_BUCKETS))
    except (KeyError, TypeError, AttributeError) as exc:  # valid JSON of another shape
        raise ValueError(f"not a metrics snapshot: {type(exc).__name__}: {exc}") from exc


class WorkerShare:
    """One worker's file in the serve's folder: publishes its snapshots and reads the other workers'."""

    def __init__(self, folder: Path, metrics: Metrics, period: float = PUBLISH_S, name: str | None = None) -> None:
        """``name``: the file's name; by default one no other worker, nor this worker's replacement, has."""
        self.folder, self.metrics, self.period = folder, metrics, period
        self.name = name or f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}.json"
        self._lock = threading.Lock()  # the thread and a scrape publish one after the other
        self._last: bytes | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._unreadable: set[str] = set()

    def publish(self) -> Snapshot:
        """Write this worker's values now (unless unchanged) and return them.

        The snapshot is taken under the lock: a slower publisher can never replace a newer file with older
        values, which would make a total go down.

        Raises:
            OSError: the file cannot be written.
        """
        with self._lock:
            snap = self.metrics.snapshot()
            data = to_json(snap)
            if data != self._last:
                path = self.folder / self.name
                tmp = self.folder / f".{self.name}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
                try:
                    os.fchmod(fd, FILE_MODE)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                os.replace(tmp, path)  # no fsync: serve starts from an empty folder after any crash
                self._last = data
            return snap

    def others(self) -> list[Snapshot]:
        """The latest snapshot of every other worker of this serve, the dead ones' too. A file that cannot be
        read is left out (and logged once)."""
        found = []
        for path in sorted(self.folder.glob(f"{PREFIX}*.json")):
            if path.name == self.name:
                continue
            try:
                found.append(from_json(path.read_bytes()))
            except (OSError, ValueError) as exc:
                if path.name not in self._unreadable:
                    log.error("metrics: %s left out of the sum: %s: %s", path.name, type(exc).__name__, exc)
                self._unreadable.add(path.name)
        return found

    def merged(self) -> Snapshot:
        """What a scrape reports: this worker's values, published first, plus every other worker's. Never
        raises for a file it cannot write or read: the scrape must answer."""
        try:
            own = self.publish()
        except OSError as exc:
            self._log_failure(exc)
            own = self.metrics.snapshot()
        return merge([own, *self.others()])

    def start(self) -> None:
        """Publish now, then every ``period`` seconds from a daemon thread until ``stop``."""
        self._tick()
        self._thread = threading.Thread(target=self._run, name="metrics-publish", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and publish a last time (a worker shut down in order loses nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._tick()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._tick()

    def _tick(self) -> None:
        try:
            self.publish()
        except OSError as exc:
            self._log_failure(exc)
            return
        if self._failing:
            log.info("metrics: the snapshot is written again")
        self._failing = False

    def _log_failure(self, exc: OSError) -> None:
        if not self._failing:  # once per outage, not every second
            log.error("metrics: cannot write %s: %s: %s", self.folder / self.name, type(exc).__name__, exc)
        self._failing = True
