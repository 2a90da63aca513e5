"""PostgreSQL storage, for several workers and nodes: psycopg 3 with its connection pool.

Every node's workers share one database (a primary; a streaming replica takes over on failover, see
docs/capacity.md). Audited writes take a transaction-scoped advisory lock, so the audit chain has one
head across every process (once per group of concurrent ones: ``group_commit``); other writes (mint
counters, rate buckets, leases) rely on row locks. A database that cannot be reached, or drops a
connection mid-request, raises ``StorageUnavailable``: the open transaction is rolled back by the server,
so nothing is half written.

While the database is away, requests fail at once rather than each waiting out the pool's timeout
(handlers run on the event loop: a wait would stall every request of the worker), and at most once a
second one of them tries a fresh connection; when it succeeds the pool is rebuilt, so service resumes
within about a second of the database's return instead of after the pool's growing reconnect delays.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from issuer.errors import Conflict, Problem, StorageUnavailable
from issuer.storage.postgres_migrations import MIGRATIONS
from issuer.storage.protocols import FieldSealer, Storage
from issuer.storage.sql import Cursor, SqlStorage, Tx
from issuer.storage.sql_base import TABLES, placeholders

log = logging.getLogger(__name__)

# pg_advisory_xact_lock keys: one for audited writes, one for schema migrations.
AUDIT_LOCK = 0x5348_4155_4449_54  # "SHAUDIT"
MIGRATION_LOCK = 0x5348_4D49_4752  # "SHMIGR"
CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_MS = 30_000
PROBE_S = 1.0  # while the database is away: how often a request tries a fresh connection
# Identity columns: their sequences move past copied rows, so new rows get fresh ids.
IDENTITIES = (("api_keys", "id"), ("devices", "id"), ("offline_codes", "idx"))


class _PgTx:
    """The shared SQL's ``?`` placeholders on a psycopg connection (``%s``; a literal ``%`` doubled)."""

    _cache: ClassVar[dict[str, str]] = {}

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    @classmethod
    def _sql(cls, sql: str) -> str:
        out = cls._cache.get(sql)
        if out is None:
            out = cls._cache[sql] = sql.replace("%", "%%").replace("?", "%s")
        return out

    def execute(self, sql: str, params: Any = (), /) -> Cursor:
        return self.conn.execute(self._sql(sql), tuple(params))  # type: ignore[arg-type,return-value]

    def executemany(self, sql: str, rows: Iterable[Sequence[object]], /) -> object:
        with self.conn.cursor() as cur:
            cur.executemany(self._sql(sql), [tuple(r) for r in rows])  # type: ignore[arg-type]
        return None


def migrate(pool: ConnectionPool[Any]) -> int:
    """Bring the schema to the newest version under an advisory lock (workers starting together apply
    each step once); return the version.

    Raises:
        RuntimeError: the schema is newer than this software.
    """
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > len(MIGRATIONS):
            raise RuntimeError(f"database schema {version} is newer than this software ({len(MIGRATIONS)})")
        for n, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)  # type: ignore[call-overload]
            conn.execute("INSERT INTO schema_version VALUES (%s)", (n,))
    return len(MIGRATIONS)


class PostgresStorage(SqlStorage):
    """``Storage`` on a PostgreSQL database named by a URL (``postgresql://user@host:port/db``)."""

    def __init__(self, url: str, sealer: FieldSealer, *, max_connections: int = 8, timeout: float = 2.0) -> None:
        """Connect and migrate.

        Raises:
            StorageUnavailable: the database cannot be reached within ``timeout`` seconds.
            RuntimeError: its schema is newer than this software.
        """
        super().__init__(sealer)
        self.url = url
        self._max_connections, self._timeout = max_connections, timeout
        self._down = False
        self._last_probe = 0.0
        self._probe_lock = threading.Lock()
        self.pool = self._new_pool()
        try:
            self.pool.open(wait=True, timeout=timeout)
            migrate(self.pool)
        except psycopg.OperationalError as exc:
            self.pool.close()
            raise StorageUnavailable(f"cannot reach PostgreSQL at {_redacted(url)}: {_first_line(exc)}") from None
        except BaseException:
            self.pool.close()
            raise

    def _new_pool(self) -> ConnectionPool[Any]:
        return ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._max_connections,
            timeout=self._timeout,
            kwargs={
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            },
            check=_check_if_idle,  # a connection the server dropped is replaced, not used
            open=False,
            name="suishenma-issuer",
        )

    def close(self) -> None:
        self.pool.close()

    def _probe(self) -> None:
        """While the database is away: fail at once, except for one fresh connection attempt a second;
        when it succeeds, a new pool replaces the old one.

        Raises: StorageUnavailable.
        """
        with self._probe_lock:
            if not self._down:
                return
            now = time.monotonic()
            if now - self._last_probe < PROBE_S:
                raise StorageUnavailable("the database is unavailable (retried at most once a second)")
            self._last_probe = now
            try:
                psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S).close()
            except psycopg.OperationalError as exc:
                raise StorageUnavailable(f"the database is unavailable: {_first_line(exc)}") from None
            old, self.pool = self.pool, self._new_pool()
            self.pool.open(wait=False)
            self._down = False
            log.warning("database reachable again")
        threading.Thread(target=old.close, name="old-pool-close", daemon=True).start()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._down:
            self._probe()
        try:
            with self.pool.connection() as conn:
                try:
                    yield conn
                except psycopg.OperationalError:
                    if conn.broken:
                        self._mark_down()
                    raise
        except psycopg.OperationalError as exc:  # PoolTimeout, connection lost, server shutting down
            if isinstance(exc, PoolTimeout):
                self._mark_down()
            log.warning("database unavailable: %s", _first_line(exc))
            raise StorageUnavailable(f"the database is unavailable: {_first_line(exc)}") from None

    def _mark_down(self) -> None:
        with self._probe_lock:
            if not self._down:
                self._down, self._last_probe = True, time.monotonic()

    @contextmanager
    def _write(self, serial: bool = True) -> Iterator[Tx]:
        # A member of a group runs its statements on the leader's connection: when that connection is lost
        # under them, they raise what the leader's transaction raises (StorageUnavailable).
        try:
            with super()._write(serial) as c:
                yield c
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(f"the database is unavailable: {_first_line(exc)}") from None

    @contextmanager
    def _transaction(self, serial: bool) -> Iterator[Tx]:
        with self._connection() as conn, conn.transaction():
            if serial:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
            yield _PgTx(conn)

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        with self._connection() as conn:
            yield _PgTx(conn)

    @contextmanager
    def _snapshot(self) -> Iterator[Tx]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield _PgTx(conn)

    # One statement over arrays, where a row each would cost the client a statement each (even pipelined).
    def _insert_audit_rows(self, c: Tx, rows: Sequence[tuple[object, ...]]) -> None:
        c.execute(
            "INSERT INTO audit (id, at, actor, action, target, detail, prev_hash, hash) SELECT * FROM"
            " unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])",
            [list(column) for column in zip(*rows, strict=True)],
        )

    def _update_statuses(self, c: Tx, rows: Sequence[tuple[object, ...]]) -> None:
        last = list({r[4]: r for r in rows}.values())  # one row per subject, the latest: an UPDATE sets a row once
        c.execute(
            "UPDATE subjects SET status = v.status, status_reason = v.reason, status_until = v.until,"
            " updated_at = v.at FROM unnest(?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::text[])"
            " AS v(status, reason, until, at, subject) WHERE subjects.subject = v.subject",
            [list(column) for column in zip(*last, strict=True)],
        )

    def _reserve_audit_ids(self, c: Tx, n: int) -> int:
        top = int(c.execute("UPDATE audit_seq SET n = n + ? RETURNING n", (n,)).fetchone()[0])
        return top - n + 1

    def audit_high_water(self) -> int:
        with self._read() as c:
            return int(c.execute("SELECT n FROM audit_seq").fetchone()[0])

    def copy_from(self, source: SqlStorage) -> dict[str, int]:
        """Insert every row of ``source`` (each of ``TABLES``, read with ``table_rows``) in one transaction,
        then move the identity sequences and the audit high-water mark past the copied rows; return each
        table's row count. Audit rows keep their ids and hashes; nothing is audited anew.

        Raises:
            Conflict: a table here does not hold exactly the rows read (nothing is kept).
            StorageUnavailable: either database went away (nothing is kept).
            psycopg.IntegrityError: this database already holds some of those rows (nothing is kept).
        """
        counts: dict[str, int] = {}
        current: list[tuple[object, object]] = []  # devices.current_idx points at offline_codes, copied later
        with self._write() as t:
            for table, (columns, _) in TABLES.items():
                names = [c.strip() for c in columns.split(",")]
                insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders(len(names))})"
                at = names.index("current_idx") if table == "devices" else -1
                counts[table] = 0
                for rows in source.table_rows(table):
                    if at >= 0:
                        current += [(r[at], r[0]) for r in rows if r[at] is not None]
                        rows = [(*r[:at], None, *r[at + 1 :]) for r in rows]
                    t.executemany(insert, rows)
                    counts[table] += len(rows)
            t.executemany("UPDATE devices SET current_idx = ? WHERE id = ?", current)
            for table, column in IDENTITIES:
                t.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                    f" GREATEST(1, (SELECT COALESCE(MAX({column}), 0) FROM {table})), true)"
                )
            t.execute("UPDATE audit_seq SET n = ?", (source.audit_high_water(),))
            for table, expected in counts.items():
                copied = int(t.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                if copied != expected:
                    raise Conflict(Problem.COPY_INCOMPLETE, table=table, copied=copied, expected=expected)
        return counts


if TYPE_CHECKING:  # mypy holds the backend to the whole interface
    _backend: type[Storage] = PostgresStorage


IDLE_CHECK_S = 2.0
_last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()


def _check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """The pool's check on checkout: a round trip only for a connection idle longer than ``IDLE_CHECK_S``
    (one in use a moment ago is alive; checking it every time doubled the cost of the busiest read). A
    connection that breaks anyway fails its request with ``StorageUnavailable`` and is discarded.

    Raises: psycopg.OperationalError (the pool then discards it and tries another).
    """
    now = time.monotonic()
    if now - _last_used.get(conn, 0.0) > IDLE_CHECK_S:
        ConnectionPool.check_connection(conn)
    _last_used[conn] = now


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _redacted(url: str) -> str:
    """The URL without a password, for messages and logs."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in sorted(info.items()))
