"""SQLite storage (the embedded default): WAL, numbered schema migrations, one transaction per write."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from .audit import GENESIS, AuditRow, canonical, row_hash
from .private import private_database
from .storage import (
    REVOKED,
    SUSPENDED,
    VALID,
    AlreadyEnrolled,
    ApiKeyRecord,
    Conflict,
    DeviceIssue,
    DeviceLimit,
    DeviceRevoked,
    MintRecord,
    NotFound,
    OfflineCodeRecord,
    PublishedList,
    ScanLogResult,
    ScanRecord,
    SigningKeyRecord,
    StatusSnapshot,
    SubjectRecord,
)

log = logging.getLogger(__name__)

# Append-only: each entry moves the schema one version up (PRAGMA user_version).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, key_hash BLOB NOT NULL UNIQUE,
        scopes TEXT NOT NULL, rate_per_s REAL NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
    CREATE TABLE subjects (
        subject TEXT PRIMARY KEY, name TEXT NOT NULL, id_number TEXT NOT NULL,
        status TEXT NOT NULL, status_reason TEXT NOT NULL, status_until INTEGER,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY, alg TEXT NOT NULL, path TEXT NOT NULL, created_at INTEGER NOT NULL,
        retired_at INTEGER, last_expiry INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE offline_codes (
        idx INTEGER PRIMARY KEY, subject TEXT NOT NULL REFERENCES subjects(subject), kid TEXT NOT NULL,
        issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0,
        auto_suspended INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX offline_codes_subject ON offline_codes(subject);
    CREATE INDEX offline_codes_nonvalid ON offline_codes(state) WHERE state != 0;
    CREATE TABLE lists (
        name TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL, etag TEXT NOT NULL,
        issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, dirty INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE scan_logs (
        kiosk_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, scenario TEXT NOT NULL,
        decision TEXT NOT NULL, reason TEXT NOT NULL, subject TEXT, issuer TEXT, received_at INTEGER NOT NULL,
        PRIMARY KEY (kiosk_id, seq)) WITHOUT ROWID;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    """,
    # 2: look-ups of ID numbers at enrolment. Not UNIQUE: a database enrolled twice before this check must
    # still open; subject_create refuses new duplicates inside its write transaction.
    """
    CREATE INDEX subjects_id_number ON subjects(id_number);
    """,
    # 3: device-bound codes. A device is a phone's key registered for a person; each of its status-list
    # indices is a row of offline_codes (the table holds every status-list entry) naming the device.
    """
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY, subject TEXT NOT NULL REFERENCES subjects(subject), thumbprint TEXT NOT NULL,
        alg TEXT NOT NULL, current_idx INTEGER, created_at INTEGER NOT NULL, last_issued_at INTEGER NOT NULL,
        revoked_at INTEGER, UNIQUE (subject, thumbprint));
    ALTER TABLE offline_codes ADD COLUMN device_id INTEGER REFERENCES devices(id);
    CREATE INDEX offline_codes_device ON offline_codes(device_id) WHERE device_id IS NOT NULL;
    """,
)
EXPIRY_STEP = 600
_IN_CHUNK = 500  # parameters per ``IN (...)`` list, well under SQLite's limit


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the schema to the newest version, each step in its own transaction; return the version."""
    conn = db.conn
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(f"database schema {version} is newer than this software ({len(MIGRATIONS)})")
    for n, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {n}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
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


class SQLiteStorage:
    """``Storage`` on one SQLite file. Thread-safe through one lock; other processes through SQLite's."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        """Open (or create) the database; its folder is made 0700 if new, its files 0600.

        Raises:
            OSError: the file or its folder cannot be created.
            RuntimeError: the schema is newer than this software.
        """
        private_database(path)
        self.path = path
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self.db = sqlite_utils.Database(conn)
        self.db.enable_wal()
        conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        self.conn = conn
        self._lock = threading.RLock()
        self._expiry_marks: dict[str, int] = {}
        self._checkpointer: Checkpointer | None = None
        migrate(self.db)

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

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _audit(
        self, c: sqlite3.Connection, now: int, actor: str, action: str, target: str, detail: dict[str, object]
    ) -> None:
        """Append one event to the chain; the caller holds the write transaction, so the head cannot move."""
        seq, prev = c.execute(
            "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'audit'),"
            " (SELECT hash FROM audit ORDER BY id DESC LIMIT 1)"
        ).fetchone()
        row_id, prev = (seq or 0) + 1, prev or GENESIS
        text = canonical(detail)
        h = row_hash(prev, row_id, now, actor, action, target, text)
        c.execute(
            "INSERT INTO audit (id, at, actor, action, target, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
            (row_id, now, actor, action, target, text, prev, h),
        )

    # API keys
    def api_key_create(
        self, name: str, key_hash: bytes, scopes: Sequence[str], rate_per_s: float, now: int, actor: str
    ) -> int:
        with self._write() as c:
            if c.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"an API key named {name!r} exists", f"已有名为 {name!r} 的 API 密钥")
            cur = c.execute(
                "INSERT INTO api_keys (name, key_hash, scopes, rate_per_s, created_at) VALUES (?,?,?,?,?)",
                (name, key_hash, ",".join(sorted(scopes)), rate_per_s, now),
            )
            self._audit(c, now, actor, "api_key.create", name, {"scopes": sorted(scopes), "rate_per_s": rate_per_s})
            return int(cur.lastrowid or 0)

    def api_key_by_hash(self, key_hash: bytes) -> ApiKeyRecord | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT id, name, scopes, rate_per_s, revoked_at FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
        if row is None:
            return None
        return ApiKeyRecord(row[0], row[1], frozenset(filter(None, row[2].split(","))), row[3], row[4] is not None)

    def api_key_revoke(self, name: str, now: int, actor: str) -> bool:
        """Revoke a key by name; False when it was already revoked. Raises: NotFound."""
        with self._write() as c:
            row = c.execute("SELECT revoked_at FROM api_keys WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no API key named {name!r}", f"没有名为 {name!r} 的 API 密钥")
            if row[0] is not None:
                return False
            c.execute("UPDATE api_keys SET revoked_at = ? WHERE name = ?", (now, name))
            self._audit(c, now, actor, "api_key.revoke", name, {})
            return True

    def api_keys(self) -> list[ApiKeyRecord]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, name, scopes, rate_per_s, revoked_at FROM api_keys ORDER BY id"
            ).fetchall()
        return [
            ApiKeyRecord(r[0], r[1], frozenset(filter(None, r[2].split(","))), r[3], r[4] is not None) for r in rows
        ]

    # subjects
    def subject_create(self, subject: str, name: str, id_number: str, now: int, actor: str) -> None:
        """Raises: AlreadyEnrolled (checked in the write transaction, so two enrolments cannot race)."""
        with self._write() as c:
            if self._subject_by_id_number(c, id_number) is not None:
                raise AlreadyEnrolled("this ID number is already enrolled")
            c.execute(
                "INSERT INTO subjects (subject, name, id_number, status, status_reason, status_until, created_at,"
                " updated_at) VALUES (?, ?, ?, 'green', 'enrolled', NULL, ?, ?)",
                (subject, name, id_number, now, now),
            )
            self._audit(c, now, actor, "subject.enrol", subject, {})

    def subject_get(self, subject: str) -> SubjectRecord | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT subject, name, id_number, status, status_reason, status_until, created_at FROM subjects"
                " WHERE subject = ?",
                (subject,),
            ).fetchone()
        return SubjectRecord(*row) if row else None

    def subject_by_id_number(self, id_number: str) -> str | None:
        with self._lock:
            return self._subject_by_id_number(self.conn, id_number)

    @staticmethod
    def _subject_by_id_number(c: sqlite3.Connection, id_number: str) -> str | None:
        row = c.execute("SELECT subject FROM subjects WHERE id_number = ? LIMIT 1", (id_number,)).fetchone()
        return str(row[0]) if row else None

    def subject_set_status(
        self, subject: str, status: str, reason: str, until: int | None, now: int, actor: str
    ) -> list[int]:
        """Set the status; a non-green status suspends the subject's valid paper codes, green reinstates them.

        Returns the offline-code indices whose state changed. Raises: NotFound.
        """
        with self._write() as c:
            row = c.execute("SELECT status FROM subjects WHERE subject = ?", (subject,)).fetchone()
            if row is None:
                raise NotFound(f"no subject {subject}")
            c.execute(
                "UPDATE subjects SET status = ?, status_reason = ?, status_until = ?, updated_at = ? WHERE subject = ?",
                (status, reason, until, now, subject),
            )
            if status == "green":
                changed = c.execute(
                    "UPDATE offline_codes SET state = 0, auto_suspended = 0"
                    " WHERE subject = ? AND state = 2 AND auto_suspended = 1 AND device_id IS NULL RETURNING idx",
                    (subject,),
                ).fetchall()
            else:
                changed = c.execute(
                    "UPDATE offline_codes SET state = 2, auto_suspended = 1"
                    " WHERE subject = ? AND state = 0 AND device_id IS NULL RETURNING idx",
                    (subject,),
                ).fetchall()
            indices = sorted(r[0] for r in changed)
            devices = self._retire_device_indices(c, subject)
            if indices or devices:
                self._status_lists_changed(c)
            detail: dict[str, object] = {"from": row[0], "to": status, "reason": reason, "until": until}
            if indices:
                detail["offline_codes"] = indices
            if devices:
                detail["device_indices"] = devices
            self._audit(c, now, actor, "subject.status", subject, detail)
            return indices

    # minting
    def record_mint(self, mint: MintRecord) -> None:
        with self._write() as c:
            self._raise_last_expiry(c, mint.kid, mint.expires_at)
            detail: dict[str, object] = {"kid": mint.kid, "scenario": mint.scenario, "exp": mint.expires_at}
            self._audit(c, mint.at, mint.actor, "code.mint", mint.subject, detail)

    def _raise_last_expiry(self, c: sqlite3.Connection, kid: str, expires_at: int) -> None:
        # The stored value is an upper bound, raised in steps of EXPIRY_STEP, so that busy minting does not
        # rewrite the key's row on every code; a retired key stays listed at most that much longer.
        if expires_at > self._expiry_marks.get(kid, 0):
            mark = expires_at + EXPIRY_STEP
            c.execute("UPDATE signing_keys SET last_expiry = MAX(last_expiry, ?) WHERE kid = ?", (mark, kid))
            self._expiry_marks[kid] = mark

    def offline_issue(self, subject: str, kid: str, expires_at: int, now: int, actor: str) -> int:
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO offline_codes (subject, kid, issued_at, expires_at) VALUES (?, ?, ?, ?) RETURNING idx",
                (subject, kid, now, expires_at),
            )
            index = int(cur.fetchone()[0])
            self._raise_last_expiry(c, kid, expires_at)
            self._audit(c, now, actor, "offline.issue", subject, {"index": index, "kid": kid, "exp": expires_at})
            return index

    def offline_get(self, index: int) -> OfflineCodeRecord | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT idx, subject, kid, issued_at, expires_at, state FROM offline_codes"
                " WHERE idx = ? AND device_id IS NULL",
                (index,),
            ).fetchone()
        return OfflineCodeRecord(*row) if row else None

    def offline_set_state(self, index: int, state: int, now: int, actor: str) -> bool:
        """Move a paper code to ``state``; False when it already was there (idempotent, not audited again).

        Raises: NotFound; Conflict when reinstating or suspending a revoked code (revocation is final).
        """
        with self._write() as c:
            row = c.execute("SELECT state FROM offline_codes WHERE idx = ? AND device_id IS NULL", (index,)).fetchone()
            if row is None:
                raise NotFound(f"no offline code {index}")
            if row[0] == state:
                return False
            if row[0] not in (VALID, SUSPENDED):
                raise Conflict(f"offline code {index} is revoked; revocation is final")
            c.execute("UPDATE offline_codes SET state = ?, auto_suspended = 0 WHERE idx = ?", (state, index))
            self._status_lists_changed(c)
            self._audit(c, now, actor, "offline.state", str(index), {"from": row[0], "to": state})
            return True

    # devices
    def device_credential(self, issue: DeviceIssue, max_devices: int) -> int:
        with self._write() as c:
            row = c.execute(
                "SELECT id, current_idx, revoked_at FROM devices WHERE subject = ? AND thumbprint = ?",
                (issue.subject, issue.thumbprint),
            ).fetchone()
            if row is not None and row[2] is not None:
                raise DeviceRevoked("this device was revoked; make a new key pair on the phone")
            if row is None:
                active = c.execute(
                    "SELECT COUNT(*) FROM devices WHERE subject = ? AND revoked_at IS NULL", (issue.subject,)
                ).fetchone()[0]
                if active >= max_devices:
                    raise DeviceLimit(f"{issue.subject} has {active} active devices; revoke one first")
                cur = c.execute(
                    "INSERT INTO devices (subject, thumbprint, alg, created_at, last_issued_at) VALUES (?,?,?,?,?)",
                    (issue.subject, issue.thumbprint, issue.alg, issue.at, issue.at),
                )
                device_id, index = int(cur.lastrowid or 0), None
                self._audit(c, issue.at, issue.actor, "device.register", issue.subject, {"device": device_id})
            else:
                device_id, index = int(row[0]), row[1]
            if index is None:  # new, or its index was retired by a status change
                index = int(
                    c.execute(
                        "INSERT INTO offline_codes (subject, kid, issued_at, expires_at, device_id)"
                        " VALUES (?, ?, ?, ?, ?) RETURNING idx",
                        (issue.subject, issue.kid, issue.at, issue.expires_at, device_id),
                    ).fetchone()[0]
                )
            c.execute(
                "UPDATE offline_codes SET kid = ?, expires_at = MAX(expires_at, ?) WHERE idx = ?",
                (issue.kid, issue.expires_at, index),
            )
            c.execute(
                "UPDATE devices SET current_idx = ?, last_issued_at = ? WHERE id = ?", (index, issue.at, device_id)
            )
            self._raise_last_expiry(c, issue.kid, issue.expires_at)
            detail: dict[str, object] = {"device": device_id, "index": index, "kid": issue.kid, "exp": issue.expires_at}
            self._audit(c, issue.at, issue.actor, "device.credential", issue.subject, detail)
            return index

    def device_revoke(self, index: int, now: int, actor: str) -> bool:
        with self._write() as c:
            row = c.execute(
                "SELECT d.id, d.subject, d.current_idx, d.revoked_at FROM offline_codes o"
                " JOIN devices d ON d.id = o.device_id WHERE o.idx = ?",
                (index,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no device credential {index}")
            device_id, subject, current, revoked_at = row
            if revoked_at is not None:
                return False
            c.execute("UPDATE devices SET revoked_at = ?, current_idx = NULL WHERE id = ?", (now, device_id))
            if current is not None:
                c.execute("UPDATE offline_codes SET state = ? WHERE idx = ?", (REVOKED, current))
                self._status_lists_changed(c)
            self._audit(c, now, actor, "device.revoke", subject, {"device": device_id, "index": current})
            return True

    @staticmethod
    def _retire_device_indices(c: sqlite3.Connection, subject: str) -> list[int]:
        """Revoke the current index of each of the subject's devices; their next credential gets a new one."""
        rows = c.execute(
            "UPDATE offline_codes SET state = ? WHERE state != ? AND idx IN"
            " (SELECT current_idx FROM devices WHERE subject = ? AND current_idx IS NOT NULL) RETURNING idx",
            (REVOKED, REVOKED, subject),
        ).fetchall()
        c.execute("UPDATE devices SET current_idx = NULL WHERE subject = ?", (subject,))
        return sorted(int(r[0]) for r in rows)

    @staticmethod
    def _status_lists_changed(c: sqlite3.Connection) -> None:
        # Counts changes not yet published; see status_snapshot and list_put.
        c.execute("UPDATE lists SET dirty = dirty + 1 WHERE name LIKE 'status:%'")

    def status_snapshot(self, name: str) -> StatusSnapshot:
        """The non-valid entries, the highest index and the pending-change count, read in one transaction."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                rows = self.conn.execute("SELECT idx, state FROM offline_codes WHERE state != 0").fetchall()
                top = self.conn.execute("SELECT COALESCE(MAX(idx), 0) FROM offline_codes").fetchone()[0]
                held = self.conn.execute("SELECT dirty FROM lists WHERE name = ?", (name,)).fetchone()
            finally:
                self.conn.execute("COMMIT")
        return StatusSnapshot([(int(i), int(st)) for i, st in rows], int(top), int(held[0]) if held else 0)

    # signing keys
    def signing_keys(self) -> list[SigningKeyRecord]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT kid, alg, path, created_at, retired_at, last_expiry FROM signing_keys ORDER BY created_at, kid"
            ).fetchall()
        return [SigningKeyRecord(*r) for r in rows]

    def signing_key_add(self, kid: str, alg: str, path: str, now: int, actor: str) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO signing_keys (kid, alg, path, created_at) VALUES (?, ?, ?, ?)", (kid, alg, path, now)
            )
            self._audit(c, now, actor, "key.add", kid, {"alg": alg})

    def signing_key_rotate(self, old_kid: str, kid: str, alg: str, path: str, now: int, actor: str) -> None:
        with self._write() as c:
            cur = c.execute(
                "UPDATE signing_keys SET retired_at = ? WHERE kid = ? AND retired_at IS NULL", (now, old_kid)
            )
            if not cur.rowcount:
                raise Conflict(
                    f"signing key {old_kid} is no longer current: another rotation came first",
                    f"签名密钥 {old_kid} 已不是当前密钥：另一次轮换已先完成",
                )
            c.execute(
                "INSERT INTO signing_keys (kid, alg, path, created_at) VALUES (?, ?, ?, ?)", (kid, alg, path, now)
            )
            self._audit(c, now, actor, "key.add", kid, {"alg": alg})
            self._audit(c, now, actor, "key.retire", old_kid, {})

    # published lists
    def list_get(self, name: str) -> PublishedList | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT name, version, body, etag, issued_at, expires_at, dirty, size FROM lists WHERE name = ?",
                (name,),
            ).fetchone()
        return (
            PublishedList(row[0], row[1], bytes(row[2]), row[3], row[4], row[5], int(row[6]), int(row[7]))
            if row
            else None
        )

    def list_put(self, lst: PublishedList, actor: str, changes_seen: int = 0) -> None:
        """Store a newly signed list; ``changes_seen`` pending changes (from its snapshot) are now published.

        Raises: Conflict when the held version is not lower.
        """
        with self._write() as c:
            held = c.execute("SELECT version FROM lists WHERE name = ?", (lst.name,)).fetchone()
            if held and held[0] >= lst.version:
                raise Conflict(
                    f"{lst.name} version {lst.version} is not above {held[0]}",
                    f"{lst.name} 的版本 {lst.version} 不高于已有的 {held[0]}",
                )
            c.execute(
                "INSERT INTO lists (name, version, body, etag, issued_at, expires_at, dirty, size)"
                " VALUES (?,?,?,?,?,?,0,?) ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
                " body = excluded.body, etag = excluded.etag, issued_at = excluded.issued_at,"
                " expires_at = excluded.expires_at, size = excluded.size, dirty = MAX(0, dirty - ?)",
                (lst.name, lst.version, lst.body, lst.etag, lst.issued_at, lst.expires_at, lst.size, changes_seen),
            )
            self._audit(
                c, lst.issued_at, actor, "list.publish", lst.name, {"version": lst.version, "exp": lst.expires_at}
            )

    # kiosk scan logs
    def scan_logs_add(self, kiosk_id: str, records: Sequence[ScanRecord], now: int) -> ScanLogResult:
        """Store the records not yet held. A record whose (kiosk, seq) is held with the same content is a
        duplicate (a resend); with other content it is a conflict: reported, never stored or overwritten."""
        with self._write() as c:
            held: dict[int, ScanRecord] = {}
            seqs = sorted({r.seq for r in records})
            for start in range(0, len(seqs), _IN_CHUNK):
                part = seqs[start : start + _IN_CHUNK]
                rows = c.execute(
                    "SELECT seq, at, scenario, decision, reason, subject, issuer FROM scan_logs"
                    f" WHERE kiosk_id = ? AND seq IN ({','.join('?' * len(part))})",
                    (kiosk_id, *part),
                ).fetchall()
                held.update((r[0], ScanRecord(*r)) for r in rows)
            fresh: list[ScanRecord] = []
            duplicates, conflicts = 0, []
            for r in records:
                have = held.get(r.seq)
                if have is None:
                    held[r.seq] = r
                    fresh.append(r)
                elif have == r:
                    duplicates += 1
                else:
                    conflicts.append(r.seq)
            c.executemany(
                "INSERT INTO scan_logs (kiosk_id, seq, at, scenario, decision, reason, subject, issuer,"
                " received_at) VALUES (?,?,?,?,?,?,?,?,?)",
                [(kiosk_id, r.seq, r.at, r.scenario, r.decision, r.reason, r.subject, r.issuer, now) for r in fresh],
            )
        return ScanLogResult(len(fresh), duplicates, conflicts)

    def scan_log_count(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT COUNT(*) FROM scan_logs").fetchone()[0])

    # audit
    def audit_event(self, action: str, target: str, detail: dict[str, object], now: int, actor: str) -> None:
        with self._write() as c:
            self._audit(c, now, actor, action, target, detail)

    def audit_rows(self, chunk: int = 10_000) -> Iterator[AuditRow]:
        """Every audit row in id order, read in chunks so memory stays flat on long logs."""
        last = 0
        while True:
            with self._lock:
                rows = list(self.db["audit"].rows_where("id > ?", [last], order_by="id", limit=chunk))
            if not rows:
                return
            for r in rows:
                yield AuditRow(**r)
            last = rows[-1]["id"]

    def audit_high_water(self) -> int:
        with self._lock:
            row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
        return int(row[0]) if row else 0

    def audit_head(self) -> tuple[int, str]:
        with self._lock:
            row = self.conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def audit_hash_at(self, row_id: int) -> str | None:
        with self._lock:
            row = self.conn.execute("SELECT hash FROM audit WHERE id = ?", (row_id,)).fetchone()
        return str(row[0]) if row else None
