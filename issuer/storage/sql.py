"""The SQL both backends share: every ``Storage`` method, written once against a small transaction interface.

Statements use ``?`` placeholders and the functions both databases know (``GREATEST``/``LEAST`` are added
to SQLite); a backend supplies connections and transactions (``_write``, ``_read``, ``_snapshot``), the
audit sequence, and its schema. Write transactions that touch audited state run one at a time on either
backend (SQLite's single writer; a PostgreSQL advisory lock), so the audit chain has one head.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from suishenma.masking import mask_id_number, mask_name

from ..audit import GENESIS, AuditRow, canonical, row_hash
from ..sealing import Sealer, normalise_id_number
from . import (
    REVOKED,
    SUSPENDED,
    VALID,
    AlreadyEnrolled,
    ApiKeyRecord,
    BatchResult,
    Conflict,
    DeviceIssue,
    DeviceLimit,
    DeviceRevoked,
    ImportMark,
    MintCount,
    NotFound,
    OfflineCodeRecord,
    PublishedList,
    ScanLogResult,
    ScanRecord,
    SigningKeyRecord,
    StatusChange,
    StatusSnapshot,
    SubjectRecord,
)

EXPIRY_STEP = 600
IN_CHUNK = 500  # parameters per ``IN (...)`` list, well under either database's limit
_SET_STATUS = "UPDATE subjects SET status = ?, status_reason = ?, status_until = ?, updated_at = ? WHERE subject = ?"
_SUBJECT_COLUMNS = (
    "subject, name_sealed, id_sealed, status, status_reason, status_until, created_at, masked_name, masked_id"
    " FROM subjects"
)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """One open transaction (or, for ``_read``, one connection)."""

    def execute(self, sql: str, params: Any = (), /) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Any], /) -> object: ...


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class SqlStorage:
    """``Storage`` over any database with the transaction hooks below."""

    sealer: Sealer

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self._expiry_marks: dict[str, int] = {}

    # --- hooks a backend provides -------------------------------------------------------------------------
    def _write(self, serial: bool = True) -> AbstractContextManager[Tx]:
        """A write transaction, committed when the block ends; ``serial``: one at a time across processes."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Tx]:
        """A connection for reads; one statement sees one consistent state."""
        raise NotImplementedError

    def _snapshot(self) -> AbstractContextManager[Tx]:
        """A read-only transaction in which every statement sees the same state."""
        raise NotImplementedError

    def _reserve_audit_ids(self, c: Tx, n: int) -> int:
        """The first of ``n`` consecutive new audit row ids; the high-water mark moves in the same transaction."""
        raise NotImplementedError

    def audit_high_water(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- audit --------------------------------------------------------------------------------------------
    def _audit(self, c: Tx, now: int, actor: str, action: str, target: str, detail: dict[str, object]) -> None:
        """Append one event to the chain; the caller holds the serial write transaction, so the head cannot
        move under it."""
        self._audit_many(c, [(now, actor, action, target, detail)])

    def _audit_many(self, c: Tx, events: Sequence[tuple[int, str, str, str, dict[str, object]]]) -> None:
        if not events:
            return
        row = c.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev = row[0] if row else GENESIS
        rows = []
        first = self._reserve_audit_ids(c, len(events))
        for row_id, (now, actor, action, target, detail) in enumerate(events, start=first):
            text = canonical(detail)
            h = row_hash(prev, row_id, now, actor, action, target, text)
            rows.append((row_id, now, actor, action, target, text, prev, h))
            prev = h
        c.executemany(
            "INSERT INTO audit (id, at, actor, action, target, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)", rows
        )

    def audit_event(self, action: str, target: str, detail: dict[str, object], now: int, actor: str) -> None:
        with self._write() as c:
            self._audit(c, now, actor, action, target, detail)

    def audit_rows(self, chunk: int = 10_000) -> Iterator[AuditRow]:
        """Every audit row in id order, read in chunks so memory stays flat on long logs."""
        last = 0
        while True:
            with self._read() as c:
                rows = c.execute(
                    "SELECT id, at, actor, action, target, detail, prev_hash, hash FROM audit WHERE id > ?"
                    " ORDER BY id LIMIT ?",
                    (last, chunk),
                ).fetchall()
            if not rows:
                return
            for r in rows:
                yield AuditRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])
            last = int(rows[-1][0])

    def audit_head(self) -> tuple[int, str]:
        with self._read() as c:
            row = c.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def audit_hash_at(self, row_id: int) -> str | None:
        with self._read() as c:
            row = c.execute("SELECT hash FROM audit WHERE id = ?", (row_id,)).fetchone()
        return str(row[0]) if row else None

    # --- API keys -----------------------------------------------------------------------------------------
    def api_key_create(
        self, name: str, key_hash: bytes, scopes: Sequence[str], rate_per_s: float, now: int, actor: str
    ) -> int:
        """Raises: Conflict: a key of that name exists."""
        with self._write() as c:
            if c.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"an API key named {name!r} exists", f"已有名为 {name!r} 的 API 密钥")
            row = c.execute(
                "INSERT INTO api_keys (name, key_hash, scopes, rate_per_s, created_at) VALUES (?,?,?,?,?) RETURNING id",
                (name, key_hash, ",".join(sorted(scopes)), rate_per_s, now),
            ).fetchone()
            self._audit(c, now, actor, "api_key.create", name, {"scopes": sorted(scopes), "rate_per_s": rate_per_s})
            return int(row[0])

    @staticmethod
    def _api_key(r: Sequence[Any]) -> ApiKeyRecord:
        return ApiKeyRecord(int(r[0]), r[1], frozenset(filter(None, r[2].split(","))), float(r[3]), r[4] is not None)

    def api_key_by_hash(self, key_hash: bytes) -> ApiKeyRecord | None:
        with self._read() as c:
            row = c.execute(
                "SELECT id, name, scopes, rate_per_s, revoked_at FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
        return self._api_key(row) if row else None

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
        with self._read() as c:
            rows = c.execute("SELECT id, name, scopes, rate_per_s, revoked_at FROM api_keys ORDER BY id").fetchall()
        return [self._api_key(r) for r in rows]

    # --- subjects -----------------------------------------------------------------------------------------
    def subject_create(self, subject: str, name: str, id_number: str, now: int, actor: str) -> None:
        """Store the person sealed, with the masked forms codes need and the ID number's keyed hash.

        Raises: AlreadyEnrolled (checked in the serial write transaction, so two enrolments cannot race).
        """
        id_number = normalise_id_number(id_number)
        lookup = self.sealer.lookup(id_number)
        row = (
            subject,
            mask_name(name),
            mask_id_number(id_number),
            self.sealer.seal(name, "name", subject),
            self.sealer.seal(id_number, "id_number", subject),
            lookup,
            now,
            now,
        )
        with self._write() as c:
            if c.execute("SELECT 1 FROM subjects WHERE id_lookup = ? LIMIT 1", (lookup,)).fetchone():
                raise AlreadyEnrolled("this ID number is already enrolled")
            c.execute(
                "INSERT INTO subjects (subject, masked_name, masked_id, name_sealed, id_sealed, id_lookup, status,"
                " status_reason, status_until, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'green', 'enrolled', NULL, ?, ?)",
                row,
            )
            self._audit(c, now, actor, "subject.enrol", subject, {})

    def _subject(self, r: Sequence[Any]) -> SubjectRecord:
        subject, name_sealed, id_sealed = r[0], bytes(r[1]), bytes(r[2])
        sealer = self.sealer

        def opener() -> tuple[str, str]:
            return sealer.open(name_sealed, "name", subject), sealer.open(id_sealed, "id_number", subject)

        until = None if r[5] is None else int(r[5])
        return SubjectRecord(subject, r[3], r[4], until, int(r[6]), r[7], r[8], opener)

    def subject_get(self, subject: str) -> SubjectRecord | None:
        with self._read() as c:
            row = c.execute(f"SELECT {_SUBJECT_COLUMNS} WHERE subject = ?", (subject,)).fetchone()
        return self._subject(row) if row else None

    def subject_by_id_number(self, id_number: str) -> str | None:
        with self._read() as c:
            row = c.execute(
                "SELECT subject FROM subjects WHERE id_lookup = ? LIMIT 1", (self.sealer.lookup(id_number),)
            ).fetchone()
        return str(row[0]) if row else None

    def subjects_sealed(self, after: str, limit: int) -> list[tuple[str, bytes, bytes]]:
        """(subject, sealed name, sealed ID number) in subject order after ``after``: for re-sealing and copies."""
        with self._read() as c:
            rows = c.execute(
                "SELECT subject, name_sealed, id_sealed FROM subjects WHERE subject > ? ORDER BY subject LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(str(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def subjects_reseal(self, rows: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Replace sealed fields (same values under the current data key); not audited: nothing changes."""
        with self._write() as c:
            c.executemany(
                "UPDATE subjects SET name_sealed = ?, id_sealed = ? WHERE subject = ?", [(n, i, s) for s, n, i in rows]
            )

    def subject_set_status(
        self, subject: str, status: str, reason: str, until: int | None, now: int, actor: str
    ) -> list[int]:
        """Set the status; a non-green status suspends the subject's valid paper codes, green reinstates them.

        Returns the offline-code indices whose state changed. Raises: NotFound.
        """
        with self._write() as c:
            row = c.execute("SELECT status FROM subjects WHERE subject = ?", (subject,)).fetchone()
            if row is None:
                raise NotFound(f"no subject {subject}", f"没有对象 {subject}")
            events: list[tuple[int, str, str, str, dict[str, object]]] = []
            indices = self._apply_status(c, subject, row[0], status, reason, until, now, actor, events, True)
            self._audit_many(c, events)
            return indices

    def _apply_status(
        self,
        c: Tx,
        subject: str,
        old: str,
        status: str,
        reason: str,
        until: int | None,
        now: int,
        actor: str,
        events: list[tuple[int, str, str, str, dict[str, object]]],
        has_codes: bool,
        deferred: list[tuple[object, ...]] | None = None,
    ) -> list[int]:
        """One status change inside a write transaction; its audit event is appended to ``events``.
        ``has_codes`` false (known from a batch look-up) skips the paper-code and device statements, and
        leaves the subject's row to the batch's one ``executemany`` (``deferred``), which PostgreSQL runs
        as a pipeline instead of a round trip per change."""
        row = (status, reason, until, now, subject)
        if deferred is not None and not has_codes:
            deferred.append(row)
        else:
            c.execute(_SET_STATUS, row)
        indices: list[int] = []
        devices: list[int] = []
        if has_codes:
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
            indices = sorted(int(r[0]) for r in changed)
            devices = self._retire_device_indices(c, subject)
            if indices or devices:
                self._status_lists_changed(c)
        detail: dict[str, object] = {"from": old, "to": status, "reason": reason, "until": until}
        if indices:
            detail["offline_codes"] = indices
        if devices:
            detail["device_indices"] = devices
        events.append((now, actor, "subject.status", subject, detail))
        return indices

    def subject_set_status_many(
        self,
        changes: Sequence[StatusChange],
        now: int,
        actor: str,
        *,
        all_or_none: bool,
        mark: Callable[[BatchResult], ImportMark] | None = None,
    ) -> BatchResult:
        """Apply a batch in one transaction: statuses and ID numbers are looked up in chunks, and the paper-code
        and device statements run only for people who have any."""
        lookups = {ch.id_number: self.sealer.lookup(ch.id_number) for ch in changes if ch.id_number is not None}
        with self._write() as c:
            by_lookup: dict[bytes, str] = {}
            for part in _chunks(sorted(set(lookups.values()))):
                rows = c.execute(
                    f"SELECT id_lookup, subject FROM subjects WHERE id_lookup IN ({_marks(len(part))})", part
                ).fetchall()
                by_lookup.update((bytes(r[0]), str(r[1])) for r in rows)
            named = [
                ch.subject if ch.subject is not None else by_lookup.get(lookups[ch.id_number or ""]) for ch in changes
            ]
            wanted = sorted({s for s in named if s is not None})
            current: dict[str, str] = {}
            with_codes: set[str] = set()
            for part in _chunks(wanted):
                marks = _marks(len(part))
                rows = c.execute(f"SELECT subject, status FROM subjects WHERE subject IN ({marks})", part).fetchall()
                current.update((str(r[0]), str(r[1])) for r in rows)
                rows = c.execute(
                    f"SELECT DISTINCT subject FROM offline_codes WHERE subject IN ({marks})", part
                ).fetchall()
                with_codes.update(str(r[0]) for r in rows)
            failed: list[tuple[int, str]] = []
            for pos, (ch, subject) in enumerate(zip(changes, named, strict=True)):
                if subject is None or subject not in current:
                    failed.append((pos, "unknown_subject" if ch.subject is not None else "unknown_id_number"))
            if failed and all_or_none:
                return BatchResult(0, failed)
            events: list[tuple[int, str, str, str, dict[str, object]]] = []
            deferred: list[tuple[object, ...]] = []
            bad = {pos for pos, _ in failed}
            for pos, (ch, subject) in enumerate(zip(changes, named, strict=True)):
                if pos in bad or subject is None:
                    continue
                self._apply_status(
                    c,
                    subject,
                    current[subject],
                    ch.status,
                    ch.reason,
                    ch.until,
                    now,
                    actor,
                    events,
                    subject in with_codes,
                    deferred,
                )
                current[subject] = ch.status
            if deferred:
                c.executemany(_SET_STATUS, deferred)
            self._audit_many(c, events)
            result = BatchResult(len(events), failed)
            if mark is not None:
                m = mark(result)
                c.execute(
                    "INSERT INTO imports (digest, line, applied, failed, updated_at) VALUES (?,?,?,?,?)"
                    " ON CONFLICT (digest) DO UPDATE SET line = excluded.line, applied = excluded.applied,"
                    " failed = excluded.failed, updated_at = excluded.updated_at",
                    (m.digest, m.line, m.applied, m.failed, now),
                )
            return result

    def import_mark(self, digest: str) -> ImportMark | None:
        with self._read() as c:
            row = c.execute("SELECT digest, line, applied, failed FROM imports WHERE digest = ?", (digest,)).fetchone()
        return ImportMark(row[0], int(row[1]), int(row[2]), int(row[3])) if row else None

    # --- minting ------------------------------------------------------------------------------------------
    def signing_key_extend(self, kid: str, until: int) -> None:
        with self._write(serial=False) as c:
            c.execute("UPDATE signing_keys SET last_expiry = GREATEST(last_expiry, ?) WHERE kid = ?", (until, kid))

    def _raise_last_expiry(self, c: Tx, kid: str, expires_at: int) -> None:
        # The stored value is an upper bound, raised in steps of EXPIRY_STEP, so that busy issuing does not
        # rewrite the key's row every time; a retired key stays listed at most that much longer.
        if expires_at > self._expiry_marks.get(kid, 0):
            mark = expires_at + EXPIRY_STEP
            c.execute("UPDATE signing_keys SET last_expiry = GREATEST(last_expiry, ?) WHERE kid = ?", (mark, kid))
            self._expiry_marks[kid] = mark

    def mint_counts_add(self, counts: Sequence[MintCount]) -> None:
        with self._write(serial=False) as c:
            c.executemany(
                "INSERT INTO mint_counts (actor, minute, kid, scenario, n) VALUES (?,?,?,?,?)"
                " ON CONFLICT (actor, minute, kid, scenario) DO UPDATE SET n = mint_counts.n + excluded.n",
                [(m.actor, m.minute, m.kid, m.scenario, m.count) for m in sorted(counts, key=_count_key)],
            )

    def mint_counts(self, since: int = 0) -> list[MintCount]:
        with self._read() as c:
            rows = c.execute(
                "SELECT actor, minute, kid, scenario, n FROM mint_counts WHERE minute >= ?"
                " ORDER BY minute, actor, kid, scenario",
                (since,),
            ).fetchall()
        return [MintCount(r[0], int(r[1]), r[2], r[3], int(r[4])) for r in rows]

    # --- paper codes --------------------------------------------------------------------------------------
    def offline_issue(self, subject: str, kid: str, expires_at: int, now: int, actor: str) -> int:
        with self._write() as c:
            index = int(
                c.execute(
                    "INSERT INTO offline_codes (subject, kid, issued_at, expires_at) VALUES (?, ?, ?, ?) RETURNING idx",
                    (subject, kid, now, expires_at),
                ).fetchone()[0]
            )
            self._raise_last_expiry(c, kid, expires_at)
            self._audit(c, now, actor, "offline.issue", subject, {"index": index, "kid": kid, "exp": expires_at})
            return index

    def offline_get(self, index: int) -> OfflineCodeRecord | None:
        with self._read() as c:
            row = c.execute(
                "SELECT idx, subject, kid, issued_at, expires_at, state FROM offline_codes"
                " WHERE idx = ? AND device_id IS NULL",
                (index,),
            ).fetchone()
        if row is None:
            return None
        return OfflineCodeRecord(int(row[0]), row[1], row[2], int(row[3]), int(row[4]), int(row[5]))

    def offline_set_state(self, index: int, state: int, now: int, actor: str) -> bool:
        """Move a paper code to ``state``; False when it already was there (idempotent, not audited again).

        Raises: NotFound; Conflict when reinstating or suspending a revoked code (revocation is final).
        """
        with self._write() as c:
            row = c.execute("SELECT state FROM offline_codes WHERE idx = ? AND device_id IS NULL", (index,)).fetchone()
            if row is None:
                raise NotFound(f"no offline code {index}", f"没有纸质码 {index}")
            if row[0] == state:
                return False
            if row[0] not in (VALID, SUSPENDED):
                raise Conflict(
                    f"offline code {index} is revoked; revocation is final", f"纸质码 {index} 已吊销，吊销不可撤回"
                )
            c.execute("UPDATE offline_codes SET state = ?, auto_suspended = 0 WHERE idx = ?", (state, index))
            self._status_lists_changed(c)
            self._audit(c, now, actor, "offline.state", str(index), {"from": int(row[0]), "to": state})
            return True

    # --- devices ------------------------------------------------------------------------------------------
    def device_credential(self, issue: DeviceIssue, max_devices: int) -> int:
        with self._write() as c:
            row = c.execute(
                "SELECT id, current_idx, revoked_at FROM devices WHERE subject = ? AND thumbprint = ?",
                (issue.subject, issue.thumbprint),
            ).fetchone()
            if row is not None and row[2] is not None:
                raise DeviceRevoked(
                    "this device was revoked; make a new key pair on the phone",
                    "此设备已被吊销；请在手机上生成新的密钥对",
                )
            index: int | None
            if row is None:
                active = c.execute(
                    "SELECT COUNT(*) FROM devices WHERE subject = ? AND revoked_at IS NULL", (issue.subject,)
                ).fetchone()[0]
                if active >= max_devices:
                    raise DeviceLimit(
                        f"{issue.subject} has {active} active devices; revoke one first",
                        f"{issue.subject} 已有 {active} 台在用设备；请先吊销其中一台",
                    )
                device_id = int(
                    c.execute(
                        "INSERT INTO devices (subject, thumbprint, alg, created_at, last_issued_at) VALUES (?,?,?,?,?)"
                        " RETURNING id",
                        (issue.subject, issue.thumbprint, issue.alg, issue.at, issue.at),
                    ).fetchone()[0]
                )
                index = None
                self._audit(c, issue.at, issue.actor, "device.register", issue.subject, {"device": device_id})
            else:
                device_id, index = int(row[0]), (None if row[1] is None else int(row[1]))
            if index is None:  # new, or its index was retired by a status change
                index = int(
                    c.execute(
                        "INSERT INTO offline_codes (subject, kid, issued_at, expires_at, device_id)"
                        " VALUES (?, ?, ?, ?, ?) RETURNING idx",
                        (issue.subject, issue.kid, issue.at, issue.expires_at, device_id),
                    ).fetchone()[0]
                )
            c.execute(
                "UPDATE offline_codes SET kid = ?, expires_at = GREATEST(expires_at, ?) WHERE idx = ?",
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
                raise NotFound(f"no device credential {index}", f"没有设备凭证 {index}")
            device_id, subject, current, revoked_at = row
            if revoked_at is not None:
                return False
            c.execute("UPDATE devices SET revoked_at = ?, current_idx = NULL WHERE id = ?", (now, device_id))
            if current is not None:
                c.execute("UPDATE offline_codes SET state = ? WHERE idx = ?", (REVOKED, current))
                self._status_lists_changed(c)
            self._audit(c, now, actor, "device.revoke", subject, {"device": int(device_id), "index": current})
            return True

    @staticmethod
    def _retire_device_indices(c: Tx, subject: str) -> list[int]:
        """Revoke the current index of each of the subject's devices; their next credential gets a new one."""
        rows = c.execute(
            "UPDATE offline_codes SET state = ? WHERE state != ? AND idx IN"
            " (SELECT current_idx FROM devices WHERE subject = ? AND current_idx IS NOT NULL) RETURNING idx",
            (REVOKED, REVOKED, subject),
        ).fetchall()
        if rows:
            c.execute("UPDATE devices SET current_idx = NULL WHERE subject = ?", (subject,))
        return sorted(int(r[0]) for r in rows)

    @staticmethod
    def _status_lists_changed(c: Tx) -> None:
        # Counts changes not yet published; see status_snapshot and list_put.
        c.execute("UPDATE lists SET dirty = dirty + 1 WHERE name LIKE 'status:%'")

    def status_top_index(self) -> int:
        with self._read() as c:
            return int(c.execute("SELECT COALESCE(MAX(idx), 0) FROM offline_codes").fetchone()[0])

    def status_snapshot(self, name: str) -> StatusSnapshot:
        """The non-valid entries, the highest index and the pending-change count, read in one snapshot."""
        with self._snapshot() as c:
            rows = c.execute("SELECT idx, state FROM offline_codes WHERE state != 0").fetchall()
            top = c.execute("SELECT COALESCE(MAX(idx), 0) FROM offline_codes").fetchone()[0]
            held = c.execute("SELECT dirty FROM lists WHERE name = ?", (name,)).fetchone()
        return StatusSnapshot([(int(i), int(st)) for i, st in rows], int(top), int(held[0]) if held else 0)

    # --- signing keys -------------------------------------------------------------------------------------
    def signing_keys(self) -> list[SigningKeyRecord]:
        with self._read() as c:
            rows = c.execute(
                "SELECT kid, alg, path, created_at, retired_at, last_expiry FROM signing_keys ORDER BY created_at, kid"
            ).fetchall()
        return [
            SigningKeyRecord(r[0], r[1], r[2], int(r[3]), None if r[4] is None else int(r[4]), int(r[5])) for r in rows
        ]

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

    # --- published lists ----------------------------------------------------------------------------------
    def list_get(self, name: str) -> PublishedList | None:
        with self._read() as c:
            row = c.execute(
                "SELECT name, version, body, etag, issued_at, expires_at, dirty, size FROM lists WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        return PublishedList(
            row[0], int(row[1]), bytes(row[2]), row[3], int(row[4]), int(row[5]), int(row[6]), int(row[7])
        )

    def list_state(self, name: str) -> tuple[int, int] | None:
        with self._read() as c:
            row = c.execute("SELECT version, dirty FROM lists WHERE name = ?", (name,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def list_put(self, lst: PublishedList, actor: str, changes_seen: int = 0) -> None:
        """Store a newly signed list; ``changes_seen`` pending changes (from its snapshot) are now published.

        Raises: Conflict when the held version is not lower (another worker published first).
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
                " expires_at = excluded.expires_at, size = excluded.size, dirty = GREATEST(0, lists.dirty - ?)",
                (lst.name, lst.version, lst.body, lst.etag, lst.issued_at, lst.expires_at, lst.size, changes_seen),
            )
            self._audit(
                c, lst.issued_at, actor, "list.publish", lst.name, {"version": lst.version, "exp": lst.expires_at}
            )

    # --- coordination -------------------------------------------------------------------------------------
    def rate_take(self, key_id: int, rate: float, burst: float, want: float, now: float) -> tuple[float, float]:
        with self._write(serial=False) as c:
            c.execute(
                "INSERT INTO rate_buckets (key_id, tokens, stamp) VALUES (?, ?, ?) ON CONFLICT (key_id) DO NOTHING",
                (key_id, burst, now),
            )
            tokens = float(
                c.execute(
                    "UPDATE rate_buckets SET tokens = LEAST(?, tokens + GREATEST(0, ? - stamp) * ?),"
                    " stamp = GREATEST(stamp, ?) WHERE key_id = ? RETURNING tokens",
                    (burst, now, rate, now, key_id),
                ).fetchone()[0]
            )
            granted = min(want, float(int(tokens)))
            if granted > 0:
                c.execute("UPDATE rate_buckets SET tokens = tokens - ? WHERE key_id = ?", (granted, key_id))
            return granted, tokens - granted

    def lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        with self._write(serial=False) as c:
            row = c.execute(
                "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, until = excluded.until"
                " WHERE leases.until < ? OR leases.holder = excluded.holder RETURNING holder",
                (name, holder, now + ttl, now),
            ).fetchone()
        return row is not None

    # --- kiosk scan logs ----------------------------------------------------------------------------------
    def scan_logs_add(self, kiosk_id: str, records: Sequence[ScanRecord], now: int) -> ScanLogResult:
        """Store the records not yet held. A record whose (kiosk, seq) is held with the same content is a
        duplicate (a resend); with other content it is a conflict: reported, never stored or overwritten."""
        with self._write() as c:
            held: dict[int, ScanRecord] = {}
            for part in _chunks(sorted({r.seq for r in records})):
                rows = c.execute(
                    "SELECT seq, at, scenario, decision, reason, subject, issuer FROM scan_logs"
                    f" WHERE kiosk_id = ? AND seq IN ({_marks(len(part))})",
                    (kiosk_id, *part),
                ).fetchall()
                held.update((int(r[0]), ScanRecord(int(r[0]), int(r[1]), *r[2:])) for r in rows)
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
            if fresh:
                c.executemany(
                    "INSERT INTO scan_logs (kiosk_id, seq, at, scenario, decision, reason, subject, issuer,"
                    " received_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (kiosk_id, r.seq, r.at, r.scenario, r.decision, r.reason, r.subject, r.issuer, now)
                        for r in fresh
                    ],
                )
        return ScanLogResult(len(fresh), duplicates, conflicts)

    def scan_log_count(self) -> int:
        with self._read() as c:
            return int(c.execute("SELECT COUNT(*) FROM scan_logs").fetchone()[0])


def _count_key(m: MintCount) -> tuple[str, int, str, str]:
    # One order for every writer: two workers adding the same counters never wait on each other in a cycle.
    return (m.actor, m.minute, m.kid, m.scenario)
