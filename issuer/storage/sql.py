"""The SQL both backends share, as one class: people and their status changes here, on top of the method
groups by concept (``sql_codes``, ``sql_lists``, ``sql_keys``, ``sql_audit``) and the base in ``sql_base``
(hooks, the audit chain's append)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from issuer.errors import AlreadyEnrolled, NotFound, Problem
from issuer.storage.records import (
    REVOKED,
    BatchResult,
    ImportMark,
    StatusChange,
    SubjectRecord,
    normalise_id_number,
)
from issuer.storage.sql_audit import AuditSql
from issuer.storage.sql_base import IN_CHUNK, Cursor, SqlBase, Tx, in_chunks, placeholders
from issuer.storage.sql_codes import CodesSql
from issuer.storage.sql_keys import KeysSql
from issuer.storage.sql_lists import ListsSql
from suishenma.masking import mask_id_number, mask_name

__all__ = ["IN_CHUNK", "Cursor", "SqlBase", "SqlStorage", "Tx"]

_SET_STATUS = "UPDATE subjects SET status = ?, status_reason = ?, status_until = ?, updated_at = ? WHERE subject = ?"
_SUBJECT_COLUMNS = (
    "subject, name_sealed, id_sealed, status, status_reason, status_until, created_at, masked_name, masked_id"
    " FROM subjects"
)


class SqlStorage(CodesSql, ListsSql, KeysSql, AuditSql):
    """``Storage`` over any database with the transaction hooks of ``SqlBase``."""

    # --- subjects -----------------------------------------------------------------------------------------
    def subject_create(self, subject: str, name: str, id_number: str, now: int, actor: str) -> None:
        """Store the person sealed, with the masked forms codes need and the ID number's keyed hash.

        Raises: AlreadyEnrolled (checked in the serial write transaction, so two enrolments cannot race);
        SealError.
        """
        self.subject_create_many([(subject, name, id_number)], now, actor)

    def subject_create_many(self, people: Sequence[tuple[str, str, str]], now: int, actor: str) -> None:
        """Enrol (subject, name, ID number) triples in one transaction, each stored and audited as
        ``subject_create`` stores and audits one: a register loaded without a transaction per person.

        Raises: AlreadyEnrolled when an ID number is enrolled already or given twice (nothing is stored);
        SealError.
        """
        rows = []
        for subject, name, id_number in people:
            number = normalise_id_number(id_number)
            sealed_name = self.sealer.seal(name, "name", subject)
            sealed_id = self.sealer.seal(number, "id_number", subject)
            lookup = self.sealer.lookup(number)
            rows.append((subject, mask_name(name), mask_id_number(number), sealed_name, sealed_id, lookup, now, now))
        lookups = [r[5] for r in rows]
        if len(set(lookups)) != len(lookups):
            raise AlreadyEnrolled()
        with self._write() as c:
            for part in in_chunks(lookups):
                marks = placeholders(len(part))
                if c.execute(f"SELECT 1 FROM subjects WHERE id_lookup IN ({marks}) LIMIT 1", part).fetchone():
                    raise AlreadyEnrolled()
            c.executemany(
                "INSERT INTO subjects (subject, masked_name, masked_id, name_sealed, id_sealed, id_lookup, status,"
                " status_reason, status_until, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'green', 'enrolled', NULL, ?, ?)",
                rows,
            )
            self._audit_many(c, [(now, actor, "subject.enrol", r[0], {}) for r in rows])

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
                raise NotFound(Problem.NO_SUBJECT, subject=subject)
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
            devices = self._revoke_live_credentials(c, subject, now)
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
            for part in in_chunks(sorted(set(lookups.values()))):
                rows = c.execute(
                    f"SELECT id_lookup, subject FROM subjects WHERE id_lookup IN ({placeholders(len(part))})", part
                ).fetchall()
                by_lookup.update((bytes(r[0]), str(r[1])) for r in rows)
            named = [
                ch.subject if ch.subject is not None else by_lookup.get(lookups[ch.id_number or ""]) for ch in changes
            ]
            wanted = sorted({s for s in named if s is not None})
            current: dict[str, str] = {}
            with_codes: set[str] = set()
            for part in in_chunks(wanted):
                marks = placeholders(len(part))
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
            times = Counter(s for pos, s in enumerate(named) if pos not in bad and s is not None)
            together: dict[str, tuple[str, dict[str, object]]] = {}  # subject -> (new status, its event's detail)
            for pos, (ch, subject) in enumerate(zip(changes, named, strict=True)):
                if pos in bad or subject is None:
                    continue
                # the codes of a person named once in the batch change with everyone else's, a few statements
                # for the whole batch; a person named twice goes change by change, in order
                grouped = subject in with_codes and times[subject] == 1
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
                    subject in with_codes and not grouped,
                    deferred,
                )
                if grouped:
                    together[subject] = (ch.status, events[-1][4])
                current[subject] = ch.status
            if deferred:
                self._update_statuses(c, deferred)
            if together:
                self._codes_follow_statuses(c, together, now)
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

    def _codes_follow_statuses(self, c: Tx, changed: dict[str, tuple[str, dict[str, object]]], now: int) -> None:
        """For people whose status changed (subject -> (new status, its audit event's detail)), the statements of
        ``_apply_status`` for their paper codes and phones, run for many people at once; the indices each
        changed go into that person's detail as ``_apply_status`` puts them."""
        paper: dict[str, list[int]] = defaultdict(list)
        phones: dict[str, list[int]] = defaultdict(list)
        green = sorted(s for s, (status, _) in changed.items() if status == "green")
        other = sorted(s for s, (status, _) in changed.items() if status != "green")
        statements = (
            (
                green,
                "SET state = 0, auto_suspended = 0 WHERE state = 2 AND auto_suspended = 1 AND device_id IS NULL",
                (),
            ),
            (other, "SET state = 2, auto_suspended = 1 WHERE state = 0 AND device_id IS NULL", ()),
            (
                sorted(changed),
                "SET state = ? WHERE device_id IS NOT NULL AND expires_at > ? AND state != ?",
                (REVOKED, now, REVOKED),
            ),
        )
        for subjects, change, params in statements:
            into = phones if params else paper
            for part in in_chunks(subjects):
                rows = c.execute(
                    f"UPDATE offline_codes {change} AND subject IN ({placeholders(len(part))}) RETURNING subject, idx",
                    (*params, *part),
                ).fetchall()
                for subject, index in rows:
                    into[str(subject)].append(int(index))
        for subject, (_, detail) in changed.items():
            if paper[subject]:
                detail["offline_codes"] = sorted(paper[subject])
            if phones[subject]:
                detail["device_indices"] = sorted(phones[subject])
        touched = sum(1 for s in changed if paper[s] or phones[s])
        if touched:
            self._status_lists_changed(c, touched)

    def import_mark(self, digest: str) -> ImportMark | None:
        with self._read() as c:
            row = c.execute("SELECT digest, line, applied, failed FROM imports WHERE digest = ?", (digest,)).fetchone()
        return ImportMark(row[0], int(row[1]), int(row[2]), int(row[3])) if row else None
