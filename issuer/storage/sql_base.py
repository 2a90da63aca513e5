"""The base of the SQL both backends share: the transaction hooks a backend supplies, the audit chain's
append, and the tables as ``db copy`` reads them.

Statements use ``?`` placeholders and the functions both databases know (``GREATEST``/``LEAST`` are added
to SQLite); a backend supplies connections and transactions (``_write``, ``_read``, ``_snapshot``), the
audit sequence, and its schema. Write transactions that touch audited state run one at a time on either
backend (SQLite's single writer; a PostgreSQL advisory lock), so the audit chain has one head; concurrent
ones of a process share one such transaction, one chained append and one commit (``group_commit``). The
methods are spread by concept over ``sql`` (people, status changes), ``sql_codes`` (paper codes,
devices), ``sql_lists`` (published lists), ``sql_keys`` (API and signing keys, coordination, minting) and
``sql_audit`` (the audit log's reads, scan logs), all on this base.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from issuer.audit_chain import GENESIS, canonical, row_hash
from issuer.storage.group_commit import AuditEvent, GroupCommit, GroupTx
from issuer.storage.protocols import FieldSealer
from issuer.storage.records import REVOKED

EXPIRY_STEP = 600
IN_CHUNK = 500  # parameters per ``IN (...)`` list, well under either database's limit
COPY_CHUNK = 5_000  # rows per read of ``table_rows``
# Every table as ``db copy`` moves it: (columns, key order). Parents before children (foreign keys); the
# audit log and its checkpoint next to last, import marks last.
TABLES: dict[str, tuple[str, str]] = {
    "api_keys": ("id, name, key_hash, scopes, rate_per_s, created_at, revoked_at", "id"),
    "subjects": (
        "subject, masked_name, masked_id, name_sealed, id_sealed, id_lookup, status, status_reason, status_until,"
        " created_at, updated_at",
        "subject",
    ),
    "signing_keys": ("kid, alg, path, created_at, retired_at, last_expiry", "kid"),
    "devices": ("id, subject, thumbprint, alg, current_idx, created_at, last_issued_at, revoked_at", "id"),
    "offline_codes": ("idx, subject, kid, issued_at, expires_at, state, auto_suspended, device_id", "idx"),
    "lists": ("name, version, body, etag, issued_at, expires_at, dirty, size", "name"),
    "list_versions": ("name, version, digest, size, issued_at, delta", "name, version"),
    "scan_logs": ("kiosk_id, seq, at, scenario, decision, reason, subject, issuer, received_at", "kiosk_id, seq"),
    "mint_counts": ("actor, minute, kid, scenario, n", "actor, minute, kid, scenario"),
    "audit": ("id, at, actor, action, target, detail, prev_hash, hash", "id"),
    "audit_checkpoints": ("issuer, seq, body, issued_at", "issuer"),
    "imports": ("digest, line, applied, failed, updated_at", "digest"),
}


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """One open transaction (or, for ``_read``, one connection)."""

    def execute(self, sql: str, params: Any = (), /) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Any], /) -> object: ...


def in_chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def placeholders(n: int) -> str:
    return ",".join("?" * n)


class SqlBase:
    """The hooks a backend provides, the audit chain, and helpers the method groups share."""

    sealer: FieldSealer

    def __init__(self, sealer: FieldSealer) -> None:
        self.sealer = sealer
        self._expiry_marks: dict[str, int] = {}
        self.group_commit = GroupCommit(lambda: self._transaction(True), self._append_chain, self._expiry_marks.clear)

    @contextmanager
    def _write(self, serial: bool = True) -> Iterator[Tx]:
        """A write transaction, committed before the block's caller goes on. ``serial`` (audited state): one at a
        time across processes, shared with the concurrent serial writes of this process (group commit)."""
        if not serial:
            with self._transaction(False) as c:
                yield c
            return
        with self.group_commit.member() as c:
            yield c

    # --- hooks a backend provides -------------------------------------------------------------------------
    def _transaction(self, serial: bool) -> AbstractContextManager[Tx]:
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

    # --- tables as stored, for ``db copy`` ----------------------------------------------------------------
    def table_rows(self, table: str, chunk: int = COPY_CHUNK) -> Iterator[list[tuple[object, ...]]]:
        """The rows of one of ``TABLES``, its columns as stored (sealed fields stay sealed), in key order and
        in chunks of ``chunk`` rows, each read in its own statement.

        Raises: KeyError: ``table`` is not one of ``TABLES``.
        """
        columns, order = TABLES[table]
        offset = 0
        while True:
            with self._read() as c:
                rows = c.execute(
                    f"SELECT {columns} FROM {table} ORDER BY {order} LIMIT ? OFFSET ?", (chunk, offset)
                ).fetchall()
            if not rows:
                return
            yield [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
            offset += len(rows)

    # --- audit --------------------------------------------------------------------------------------------
    def _audit(self, c: Tx, now: int, actor: str, action: str, target: str, detail: dict[str, object]) -> None:
        """Append one event to the chain; the caller holds the serial write transaction, so the head cannot
        move under it."""
        self._audit_many(c, [(now, actor, action, target, detail)])

    def _audit_many(self, c: Tx, events: Sequence[AuditEvent]) -> None:
        """Append events to the chain; in a group, when the group commits (they wait with the member's writes)."""
        if isinstance(c, GroupTx):
            c.events += events
        else:
            self._append_chain(c, events)

    def _append_chain(self, c: Tx, events: Sequence[AuditEvent]) -> None:
        """Chain ``events`` after the head in one append; the caller holds the serial write transaction."""
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
        self._insert_audit_rows(c, rows)

    # --- bulk statements a backend may do its own way -----------------------------------------------------
    def _insert_audit_rows(self, c: Tx, rows: Sequence[tuple[object, ...]]) -> None:
        """Insert (id, at, actor, action, target, detail, prev_hash, hash) rows."""
        c.executemany(
            "INSERT INTO audit (id, at, actor, action, target, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)", rows
        )

    def _update_statuses(self, c: Tx, rows: Sequence[tuple[object, ...]]) -> None:
        """Set (status, reason, until, updated_at) of subjects, from (status, reason, until, now, subject) rows in
        order (a later row for a subject wins)."""
        c.executemany(
            "UPDATE subjects SET status = ?, status_reason = ?, status_until = ?, updated_at = ? WHERE subject = ?",
            rows,
        )

    # --- shared by several groups -------------------------------------------------------------------------
    def _raise_last_expiry(self, c: Tx, kid: str, expires_at: int) -> None:
        # The stored value is an upper bound, raised in steps of EXPIRY_STEP, so that busy issuing does not
        # rewrite the key's row every time; a retired key stays listed at most that much longer.
        if expires_at > self._expiry_marks.get(kid, 0):
            mark = expires_at + EXPIRY_STEP
            c.execute("UPDATE signing_keys SET last_expiry = GREATEST(last_expiry, ?) WHERE kid = ?", (mark, kid))
            self._expiry_marks[kid] = mark

    @staticmethod
    def _revoke_live_credentials(c: Tx, subject: str, now: int) -> list[int]:
        """Revoke every live credential of the subject's phones: they say the old status, and the phones'
        next batch says the new one."""
        rows = c.execute(
            "UPDATE offline_codes SET state = ? WHERE subject = ? AND device_id IS NOT NULL AND expires_at > ?"
            " AND state != ? RETURNING idx",
            (REVOKED, subject, now, REVOKED),
        ).fetchall()
        return sorted(int(r[0]) for r in rows)

    @staticmethod
    def _status_lists_changed(c: Tx, changes: int = 1) -> None:
        # Counts changes not yet published; see status_snapshot and list_put.
        c.execute("UPDATE lists SET dirty = dirty + ? WHERE name LIKE 'status:%'", (changes,))
