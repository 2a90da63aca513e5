"""SQLite storage, the embedded default: one file, WAL, one writer at a time (``BEGIN IMMEDIATE``)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from issuer.errors import StorageUnavailable
from issuer.files import FILE_MODE, private_database
from issuer.storage.protocols import FieldSealer, Storage
from issuer.storage.sql import SqlStorage, Tx
from issuer.storage.sqlite_migrations import MIGRATIONS, SEALING_STEP

log = logging.getLogger(__name__)


def migrate(conn: sqlite3.Connection, sealer: FieldSealer) -> int:
    """Bring the schema to the newest version, each step in its own transaction; return the version.

    Raises:
        RuntimeError: the schema is newer than this software.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(f"database schema {version} is newer than this software ({len(MIGRATIONS)})")
    had_rows = False
    for n, step in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if isinstance(step, str):
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            else:
                had_rows = had_rows or (n == SEALING_STEP and conn.execute("SELECT 1 FROM subjects").fetchone())
                step(conn, sealer)
            conn.execute(f"PRAGMA user_version = {n}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if had_rows:  # clear names were in pages now free: rewrite the file without them
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return len(MIGRATIONS)


class Checkpointer(threading.Thread):
    """Checkpoints the WAL from its own connection; a failure is logged and retried, never raised.

    ``checkpoints`` counts completed checkpoints, ``last`` holds the latest (busy, WAL frames, frames
    checkpointed) and ``checkpointed`` is set after each: tests wait on it instead of sleeping.
    """

    def __init__(self, path: Path, interval: float) -> None:
        super().__init__(name="wal-checkpoint", daemon=True)
        self.path, self.interval = path, interval
        self.checkpoints = 0
        self.last: tuple[int, int, int] | None = None
        self.checkpointed = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            while not self._stop_event.wait(self.interval):
                try:
                    self._done(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint failed: %s", exc)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _done(self, row: tuple[int, int, int]) -> None:
        self.last = (int(row[0]), int(row[1]), int(row[2]))
        self.checkpoints += 1
        self.checkpointed.set()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)


class SQLiteStorage(SqlStorage):
    """``Storage`` on one SQLite file. Thread-safe through one lock; other processes through SQLite's."""

    def __init__(self, path: Path, sealer: FieldSealer, synchronous: str = "NORMAL") -> None:
        """Open (or create) the database; its folder is made 0700 if new, its files 0600.

        Raises:
            OSError: the file or its folder cannot be created.
            RuntimeError: the schema is newer than this software.
        """
        super().__init__(sealer)
        private_database(path)
        self.path = path
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        # The names PostgreSQL uses for the two-argument max and min, so that both run the same SQL.
        conn.create_function("GREATEST", 2, max, deterministic=True)
        conn.create_function("LEAST", 2, min, deterministic=True)
        self.conn = conn
        self._lock = threading.RLock()
        self._checkpointer: Checkpointer | None = None
        self._queue_fd: int | None = None
        migrate(conn, sealer)

    def checkpoint_in_background(self, interval: float = 1.0) -> None:
        """Move WAL checkpoints (and their fsyncs) off the request path: a thread with its own connection
        checkpoints every ``interval`` seconds; requests then never pay a checkpoint stall."""
        if self._checkpointer is None:
            self.conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = Checkpointer(self.path, interval)
            self._checkpointer.start()

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The background WAL checkpointer, once ``checkpoint_in_background`` has started it."""
        return self._checkpointer

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self.conn.close()
            if self._queue_fd is not None:
                os.close(self._queue_fd)

    @contextmanager
    def _transaction(self, serial: bool) -> Iterator[Tx]:
        """Raises: StorageUnavailable: another process held the write lock past the busy timeout."""
        with self._lock, self._writers_queue() if serial else contextlib.nullcontext():
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageUnavailable(f"the database is busy: {exc}") from None
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def _writers_queue(self) -> Iterator[None]:
        """The audited writers of every process wait their turn here, on a lock file beside the database
        (taken under ``_lock``: one holder per process), instead of each polling SQLite's write lock, whose
        busy handler sleeps up to 100 ms between tries: the kernel wakes the next writer at once."""
        if self._queue_fd is None:
            self._queue_fd = os.open(
                self.path.with_name(self.path.name + "-writers"), os.O_RDWR | os.O_CREAT, FILE_MODE
            )
        fcntl.flock(self._queue_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._queue_fd, fcntl.LOCK_UN)

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        with self._lock:
            yield self.conn

    @contextmanager
    def _snapshot(self) -> Iterator[Tx]:
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def _reserve_audit_ids(self, c: Tx, n: int) -> int:
        # AUTOINCREMENT's mark: the explicit ids inserted above it move it, so deleted tail rows stay visible.
        row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
        return (int(row[0]) if row else 0) + 1

    def audit_high_water(self) -> int:
        with self._lock:
            row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
        return int(row[0]) if row else 0


if TYPE_CHECKING:  # mypy holds the backend to the whole interface
    _backend: type[Storage] = SQLiteStorage
