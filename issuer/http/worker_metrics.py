"""Counters summed over the worker processes of one ``serve --workers N``: prometheus_client's multiprocess
mode, made simple.

With N workers on one port a scrape reaches any one of them. Each worker keeps its counters and histograms
in memory (``Metrics``) and publishes a snapshot of them as a small JSON file in the serve's folder
(mode 0700, files 0600): from a background thread at most every ``PUBLISH_S`` seconds (only when something
changed, or when its file is missing) and whenever it answers a scrape. A file is replaced by rename, so a
reader sees a whole snapshot, old or new. The worker that answers a scrape publishes its own values, adds the
latest file of every other worker, and renders the sum; the gauges it evaluates itself, once.

- One folder per serve: ``var/metrics/serve-<pid>-<token>/``, made by ``serve`` (``ServeFolder``) and named
  to its workers in ``SUISHENMA_SERVE_METRICS_DIR``. No other serve writes, empties or reads it, whatever
  its host and port: a second serve of the same issuer folder (on another address, or one that then fails
  to bind) cannot change this serve's sums. The serve and each of its workers hold a shared ``flock`` on the
  folder's ``lock`` file; ``serve`` removes its folder when it stops, and at start removes the folders of
  serves that no longer run (no process holds their lock, e.g. after a crash or ``kill -9``).
- Staleness: another worker's part is as old as its last publication, up to about ``PUBLISH_S`` (1 s).
- Totals never go down while the serve runs: a worker's file only grows; a worker reports for itself what is
  in its file (published first; when writing fails, its last written snapshot); the file of a worker that
  died stays in the folder (uvicorn's replacement writes under a new name), so its counts stay in the sum;
  a file that cannot be read counts with the last snapshot read from it. A new serve starts from an empty
  folder: a restart is a counter reset, as Prometheus expects of a restarted process.
- A worker killed outright loses what it counted since its last publication, as a single process would.
- Requests only touch memory: the files are written by the thread and by the scrape (in the threadpool).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from issuer.files import DIR_MODE, FILE_MODE, private_dir, write_private
from issuer.http.metrics import BUCKETS, Metrics, Snapshot, merge
from issuer.settings import Settings
from issuer.signing_times import BUCKETS as SIGNING_BUCKETS
from issuer.signing_times import KindTimes

PUBLISH_S: Final = 1.0
# ``serve --workers N`` names its folder to its workers in this variable.
METRICS_DIR_ENV: Final = "SUISHENMA_SERVE_METRICS_DIR"
FORMAT: Final = 1
PREFIX: Final = "worker-"
SERVE_PREFIX: Final = "serve-"  # a serve's folder, with its lock held
NEW_PREFIX: Final = ".new-"  # a serve's folder before its lock is held: never removed by another serve
OLD_PREFIX: Final = ".old-"  # a dead serve's folder, being removed
LOCK: Final = "lock"

log = logging.getLogger(__name__)


def metrics_root(settings: Settings) -> Path:
    """The folder that holds one folder per running ``serve --workers N`` of this issuer folder."""
    return settings.path(Path("var") / "metrics").absolute()


def _hold(folder: Path, create: bool = False) -> int:
    """Open ``folder``'s lock file and take a shared lock on it: the folder is in use while it is held.

    Raises:
        OSError: the file cannot be opened (``FileNotFoundError`` when it is gone) or locked (``BlockingIOError``
            while a dead serve's folder is being removed).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    fd = os.open(folder / LOCK, flags, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_stale(root: Path) -> list[str]:
    """Remove the folders of serves no process holds any more (their serve and its workers are gone) and
    return their names. A running serve's folder is left alone, and so is one being created.

    Raises:
        OSError: ``root`` cannot be listed (a folder that cannot be removed is logged and left).
    """
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(OLD_PREFIX):  # another serve was removing it, and may still be
            shutil.rmtree(entry, ignore_errors=True)
            continue
        if not entry.name.startswith(SERVE_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            fd = os.open(entry / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # renamed away by another serve's removal since it was listed
        except OSError as exc:
            log.warning("metrics: cannot look at %s: %s: %s", entry, type(exc).__name__, exc)
            continue
        gone = root / f"{OLD_PREFIX}{entry.name}"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a serve or a worker holds it
            os.rename(entry, gone)  # out of sight of other serves at once, before the slow part
        except OSError:  # BlockingIOError: in use; FileNotFoundError: another serve took it first
            continue
        finally:
            os.close(fd)
        shutil.rmtree(gone, ignore_errors=True)
        removed.append(entry.name)
    return removed


class ServeFolder:
    """The folder of one running ``serve --workers N``, held (a shared lock on its lock file) until ``close``,
    which removes it. Used as a context manager around ``uvicorn.run``."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def create(cls, root: Path) -> ServeFolder:
        """Remove dead serves' folders from ``root``, then make this serve's (0700), empty and held.

        The folder is made under a name other serves ignore and renamed once its lock is held, so no serve
        ever sees it unheld.

        Raises:
            OSError: ``root`` or the folder cannot be created, or ``root`` listed.
        """
        private_dir(root)
        for name in remove_stale(root):
            log.info("metrics: removed %s, left by a serve that no longer runs", root / name)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        new, path = root / f"{NEW_PREFIX}{name}", root / f"{SERVE_PREFIX}{name}"
        new.mkdir(mode=DIR_MODE)
        try:
            fd = _hold(new, create=True)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        try:
            os.rename(new, path)
        except BaseException:
            os.close(fd)
            shutil.rmtree(new, ignore_errors=True)
            raise
        return cls(path, fd)

    def close(self) -> None:
        """Remove the folder (its lock still held, so no other serve removes it at the same time) and let go
        of the lock. Idempotent; a folder that cannot be removed is logged, and removed by a later serve."""
        if self._fd < 0:
            return
        try:
            shutil.rmtree(self.path)
        except OSError as exc:
            log.warning("metrics: cannot remove %s: %s: %s", self.path, type(exc).__name__, exc)
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ServeFolder:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


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


def _zero(snap: Snapshot) -> Snapshot:
    """``snap`` with every value 0: the series it has, none of its counts."""
    counters = dict.fromkeys(snap.counters, 0.0)

    def hist(series: Any) -> dict[str, KindTimes]:
        return {name: KindTimes((0,) * len(t.counts), 0.0) for name, t in series.items()}

    return Snapshot(counters, hist(snap.requests), hist(snap.signing))


class WorkerShare:
    """One worker's file in the serve's folder: publishes its snapshots and reads the other workers'."""

    def __init__(self, folder: Path, metrics: Metrics, period: float = PUBLISH_S, name: str | None = None) -> None:
        """``name``: the file's name; by default one no other worker, nor this worker's replacement, has."""
        self.folder, self.metrics, self.period = folder, metrics, period
        self.name = name or f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}.json"
        self._lock = threading.Lock()  # the thread and scrapes publish one after the other
        self._last: bytes | None = None
        self._published: Snapshot | None = None  # what the file holds: the other workers add this
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._unreadable: set[str] = set()
        self._read: dict[str, Snapshot] = {}  # the last snapshot read from each other worker's file
        self._read_lock = threading.Lock()  # scrapes run in a threadpool, several at once
        self._held: int | None = None

    def publish(self) -> Snapshot:
        """Write this worker's values now (unless unchanged and still in the file) and return them.

        The snapshot is taken under the lock: a slower publisher can never replace a newer file with older
        values, which would make a total go down.

        Raises:
            OSError: the file cannot be written.
        """
        with self._lock:
            return self._publish()

    def _publish(self) -> Snapshot:
        snap = self.metrics.snapshot()
        data = to_json(snap)
        path = self.folder / self.name
        # The file is checked too, not only the last bytes written: an idle worker whose file was removed
        # would otherwise never write it again, and the sum would lose its counts.
        if data != self._last or not path.exists():
            write_private(path, data, durable=False)  # a new serve starts from a new folder after any crash
            self._last = data
        self._published = snap
        return snap

    def own(self) -> Snapshot:
        """This worker's part of a sum: its values, published now; when they cannot be written, the values its
        file holds (what the other workers add), so that no scrape reports more than a later one will. Never
        raises; a write failure is logged once until a write succeeds again."""
        with self._lock:
            try:
                snap = self._publish()
            except OSError as exc:
                if not self._failing:  # once per outage, not every second nor every scrape
                    log.error("metrics: cannot write %s: %s: %s", self.folder / self.name, type(exc).__name__, exc)
                self._failing = True
                return self._published if self._published is not None else _zero(self.metrics.snapshot())
            if self._failing:
                log.info("metrics: the snapshot is written again")
            self._failing = False
            return snap

    def others(self) -> list[Snapshot]:
        """The latest snapshot of every other worker of this serve, the dead ones' too. A file that cannot be
        read (or has gone) counts with the last snapshot read from it, or not at all; logged once."""
        with self._read_lock:
            return self._others()

    def _others(self) -> list[Snapshot]:
        found = []
        names = {p.name for p in self.folder.glob(f"{PREFIX}*.json")} | set(self._read)
        for name in sorted(names - {self.name}):
            try:
                snap = from_json((self.folder / name).read_bytes())
            except (OSError, ValueError) as exc:
                if name not in self._unreadable:
                    kept = "its last snapshot read stays in the sum" if name in self._read else "left out of the sum"
                    log.error("metrics: %s %s: %s: %s", name, kept, type(exc).__name__, exc)
                self._unreadable.add(name)
                if name in self._read:
                    found.append(self._read[name])
                continue
            self._unreadable.discard(name)
            self._read[name] = snap
            found.append(snap)
        return found

    def merged(self) -> Snapshot:
        """What a scrape reports: this worker's part (``own``) plus every other worker's. Never raises for a
        file it cannot write or read: the scrape must answer."""
        return merge([self.own(), *self.others()])

    def start(self) -> None:
        """Hold the serve's folder (so that no serve removes it while this worker runs), publish now, then
        every ``period`` seconds from a daemon thread until ``stop``."""
        try:
            self._held = _hold(self.folder)
        except OSError as exc:  # counted all the same; only a stale-folder cleanup could miss this worker
            log.warning("metrics: cannot hold %s: %s: %s", self.folder, type(exc).__name__, exc)
        self.own()
        self._thread = threading.Thread(target=self._run, name="metrics-publish", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and publish a last time (a worker shut down in order loses nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.own()
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.own()
