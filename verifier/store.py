"""The verifier's state folder: one SQLite file (WAL, synchronous=FULL) holding configuration, the signed
lists, the replay cache and the scan log. Every write is one transaction: a list is the old or the new
version, and a scan record the API returned for survives a crash or power cut.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from .kiosk_key import KEY_FILE_NAME, write_key_file
from .trust_state import HeldList

DB_NAME = "verifier.db"
PENDING, UPLOADED, CONFLICT = 0, 1, 2  # values of scans.uploaded
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS lists (name TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB,"
    " etag TEXT, checked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS scans (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,"
    " kiosk_id TEXT NOT NULL, scenario TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL,"
    " subject TEXT, issuer TEXT, uploaded INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS scans_pending ON scans(seq) WHERE uploaded = 0",
    "CREATE INDEX IF NOT EXISTS scans_at ON scans(at)",
    "CREATE TABLE IF NOT EXISTS replay (key BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID",
)
# Columns added since the first schema: (table, column, definition), added to older state folders on open.
ADDED_COLUMNS = (
    ("lists", "delta", "BLOB"),  # changes applied to the full list since it was fetched (statusdelta)
    ("lists", "stamp", "BLOB"),  # the newest signed timestamp that vouches for the list (freshness)
)


@dataclass(frozen=True)
class ScanRow:
    seq: int
    at: int
    kiosk_id: str
    scenario: str
    decision: str
    reason: str
    subject: str | None
    issuer: str | None
    uploaded: bool  # the issuer acknowledged it
    conflict: bool = False  # the issuer holds another record under this seq: kept here, not re-sent


# at, kiosk id, scenario, decision, reason, subject, issuer, replay (key, expiry): one verdict's record
ScanArgs = tuple[int, str, str, str, str, "str | None", "str | None", "tuple[bytes, int] | None"]


class GroupCommitter(threading.Thread):
    """Commits verdict records in groups for a service answering many gates: requests that arrive while a
    group's fsync is under way go into the next group together, so the disk's latency is paid once per
    group rather than once per verdict. A record's future is resolved only after its group committed; a
    failed commit fails every future of the group (nothing of it was written)."""

    def __init__(self, store: Store, max_group: int = 256) -> None:
        super().__init__(name="verdict-commit", daemon=True)
        self.store, self.max_group = store, max_group
        self.groups = self.largest = 0  # groups committed and the most records in one, for tests and metrics
        self._queue: list[tuple[ScanArgs, Future[bool]]] = []
        self._ready = threading.Condition()
        self._stopping = False

    def submit(self, args: ScanArgs) -> Future[bool]:
        """Queue a record; the future holds ``record``'s answer once it is durable.

        Raises: RuntimeError after ``stop``.
        """
        future: Future[bool] = Future()
        with self._ready:
            if self._stopping:
                raise RuntimeError("the verdict committer is stopped")
            self._queue.append((args, future))
            self._ready.notify()
        return future

    def run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
            try:
                results = self.store.record_group([args for args, _ in group])
            except BaseException as exc:  # sqlite3.Error (disk full, ...): every request of the group learns it
                for _, future in group:
                    future.set_exception(exc)
                continue
            self.groups += 1
            self.largest = max(self.largest, len(group))
            for (_, future), ok in zip(group, results, strict=True):
                future.set_result(ok)

    def stop(self) -> None:
        """Commit what is queued, then end."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self.join(timeout=30)


class Store:
    """Thread-safe through one lock: the frame loop verifies while a background thread syncs."""

    def __init__(self, state_dir: Path) -> None:
        _private_dir(state_dir)
        _private_files(state_dir)
        conn = sqlite3.connect(state_dir / DB_NAME, isolation_level=None, check_same_thread=False, timeout=10)
        self.db = sqlite_utils.Database(conn)
        self.db.enable_wal()
        conn.execute("PRAGMA synchronous = FULL")  # an acknowledged scan survives power loss
        self.conn = conn
        self.lock = threading.RLock()
        with self.tx() as c:
            for statement in SCHEMA:
                c.execute(statement)
            for table, column, definition in ADDED_COLUMNS:
                if column not in {row[1] for row in c.execute(f"PRAGMA table_info({table})")}:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        self._move_key_out(state_dir)

    def _move_key_out(self, state_dir: Path) -> None:
        """States made by older versions held the kiosk API key in ``config``: move it to a 0600 file
        and overwrite it in the database (secure_delete, then a checkpoint that empties the WAL)."""
        row = self.conn.execute("SELECT value FROM config WHERE key = 'kiosk_api_key'").fetchone()
        if row is None:
            return
        key_file = write_key_file(state_dir / KEY_FILE_NAME, row[0])
        self.conn.execute("PRAGMA secure_delete = ON")
        with self.tx() as c:
            c.execute("DELETE FROM config WHERE key = 'kiosk_api_key'")
            c.execute(
                "INSERT OR REPLACE INTO config (key, value) VALUES ('kiosk_api_key_file', ?)",
                (str(key_file.resolve()),),
            )
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.execute("PRAGMA secure_delete = OFF")

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # configuration
    def config(self) -> dict[str, str]:
        with self.lock:
            return dict(self.conn.execute("SELECT key, value FROM config").fetchall())

    def set_config(self, values: dict[str, str]) -> None:
        with self.tx() as c:
            c.executemany("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", values.items())

    # lists
    def lists(self) -> tuple[list[HeldList], dict[str, int]]:
        """Held lists with a body, and the highest version seen of every list."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT name, version, body, etag, checked_at, expires_at, delta, stamp FROM lists"
            ).fetchall()
        held = [
            HeldList(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], _blob(r[6]), _blob(r[7]))
            for r in rows
            if r[2] is not None
        ]
        return held, {r[0]: r[1] for r in rows}

    def save_lists(self, lists: list[HeldList], confirmed: dict[str, int]) -> None:
        """Store new lists and mark unchanged ones (304) as confirmed at the given time, in one transaction."""
        with self.tx() as c:
            for h in lists:
                c.execute(
                    "INSERT OR REPLACE INTO lists (name, version, body, etag, checked_at, expires_at, delta, stamp)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (h.name, h.version, h.body, h.etag, h.checked_at, h.expires_at, h.delta, h.stamp),
                )
            for name, at in confirmed.items():
                c.execute("UPDATE lists SET checked_at = MAX(checked_at, ?) WHERE name = ?", (at, name))

    def drop_list_body(self, name: str) -> None:
        """Forget a list's bytes but keep its version (rollback protection)."""
        with self.tx() as c:
            c.execute("UPDATE lists SET body = NULL, etag = NULL, delta = NULL, stamp = NULL WHERE name = ?", (name,))

    # verdicts
    def record(
        self,
        at: int,
        kiosk_id: str,
        scenario: str,
        decision: str,
        reason: str,
        subject: str | None,
        issuer: str | None,
        replay: tuple[bytes, int] | None = None,
    ) -> bool:
        """Log a verdict durably; with ``replay`` (key, expiry), also claim the code's single use.

        Returns False, logging nothing, when the replay key is already held (the caller then logs a
        replay denial instead).
        """
        with self.tx() as c:
            return self._record_in(c, (at, kiosk_id, scenario, decision, reason, subject, issuer, replay))

    @staticmethod
    def _record_in(c: sqlite3.Connection, args: ScanArgs) -> bool:
        at, kiosk_id, scenario, decision, reason, subject, issuer, replay = args
        if replay is not None:
            key, expires_at = replay
            if c.execute("SELECT 1 FROM replay WHERE key = ? AND expires_at >= ?", (key, at)).fetchone():
                return False
            c.execute("INSERT OR REPLACE INTO replay (key, expires_at) VALUES (?, ?)", (key, expires_at))
        c.execute(
            "INSERT INTO scans (at, kiosk_id, scenario, decision, reason, subject, issuer)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, kiosk_id, scenario, decision, reason, subject, issuer),
        )
        return True

    def record_group(self, group: Sequence[ScanArgs]) -> list[bool]:
        """``record`` for several verdicts in one transaction (one fsync), in order: a replay key claimed by
        an earlier one is held for the later ones."""
        with self.tx() as c:
            return [self._record_in(c, args) for args in group]

    def newest_verdict(self, after_seq: int = 0) -> tuple[int, int | None]:
        """(the last record's seq, the latest time among the records after ``after_seq``)."""
        with self.lock:
            seq = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM scans").fetchone()[0]
            at = self.conn.execute("SELECT MAX(at) FROM scans WHERE seq > ?", (after_seq,)).fetchone()[0]
        return int(seq), None if at is None else int(at)

    def prune_replay(self, now: int) -> int:
        with self.tx() as c:
            return c.execute("DELETE FROM replay WHERE expires_at < ?", (now,)).rowcount

    def pending(self, limit: int) -> list[ScanRow]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT seq, at, kiosk_id, scenario, decision, reason, subject, issuer, uploaded FROM scans"
                " WHERE uploaded = 0 ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row(r) for r in rows]

    def mark_uploaded(self, last_seq: int, first_seq: int, conflicts: Collection[int] = ()) -> None:
        """Mark the pending records from ``first_seq`` to ``last_seq`` acknowledged, except ``conflicts``,
        which the issuer refused because it holds other records under those numbers."""
        with self.tx() as c:
            c.execute(
                "UPDATE scans SET uploaded = ? WHERE seq BETWEEN ? AND ? AND uploaded = ?",
                (UPLOADED, first_seq, last_seq, PENDING),
            )
            c.executemany("UPDATE scans SET uploaded = ? WHERE seq = ?", ((CONFLICT, seq) for seq in conflicts))

    def counts(self, since: int) -> tuple[int, int, int]:
        """(scans since ``since``, records not yet uploaded, records in conflict with the issuer's)."""
        with self.lock:
            today = self.conn.execute("SELECT COUNT(*) FROM scans WHERE at >= ?", (since,)).fetchone()[0]
            pending = self.conn.execute("SELECT COUNT(*) FROM scans WHERE uploaded = ?", (PENDING,)).fetchone()[0]
            conflicts = self.conn.execute("SELECT COUNT(*) FROM scans WHERE uploaded = ?", (CONFLICT,)).fetchone()[0]
        return int(today), int(pending), int(conflicts)

    def scans(self, since_seq: int = 0) -> Iterator[ScanRow]:
        """Every record after ``since_seq``, in order, read in chunks."""
        last = since_seq
        while True:
            with self.lock:
                rows = self.conn.execute(
                    "SELECT seq, at, kiosk_id, scenario, decision, reason, subject, issuer, uploaded FROM scans"
                    " WHERE seq > ? ORDER BY seq LIMIT 5000",
                    (last,),
                ).fetchall()
            if not rows:
                return
            for r in rows:
                yield _row(r)
            last = rows[-1][0]


def _private_dir(path: Path) -> None:
    """Create the state folder (and missing parents) 0700: it holds the scan log and the key file."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
        os.chmod(p, 0o700)  # mkdir's mode is filtered by the umask


def _private_files(state_dir: Path) -> None:
    """Make the database 0600 before SQLite opens it: its -wal and -shm files take the same mode."""
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
        path = state_dir / name
        if name == DB_NAME and not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if path.exists():
            os.chmod(path, 0o600)


def _row(r: tuple[Any, ...]) -> ScanRow:
    return ScanRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8] == UPLOADED, r[8] == CONFLICT)


def _blob(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)
