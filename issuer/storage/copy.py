"""``suishenma-issuer db copy --to URL``: move an issuer's data to an empty PostgreSQL database, intact.

Rows are copied as they are: sealed names stay sealed under the same data key (their associated data
names the column and the subject, which do not change), and the audit log keeps its ids and hashes, so
its chain and its signed checkpoints still hold. The copy is one transaction on the target: it lands
whole or not at all. Afterwards every table's row count is compared and the copied audit chain is
walked and held against the source's head.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..audit import verify_chain
from . import Conflict
from .postgres import PostgresStorage
from .sql import SqlStorage

CHUNK = 5_000
# Parents before children (foreign keys); the audit log last but one, import marks last.
TABLES: tuple[tuple[str, str, str], ...] = (
    ("api_keys", "id, name, key_hash, scopes, rate_per_s, created_at, revoked_at", "id"),
    (
        "subjects",
        "subject, masked_name, masked_id, name_sealed, id_sealed, id_lookup, status, status_reason, status_until,"
        " created_at, updated_at",
        "subject",
    ),
    ("signing_keys", "kid, alg, path, created_at, retired_at, last_expiry", "kid"),
    ("devices", "id, subject, thumbprint, alg, NULL, created_at, last_issued_at, revoked_at", "id"),
    ("offline_codes", "idx, subject, kid, issued_at, expires_at, state, auto_suspended, device_id", "idx"),
    ("lists", "name, version, body, etag, issued_at, expires_at, dirty, size", "name"),
    ("scan_logs", "kiosk_id, seq, at, scenario, decision, reason, subject, issuer, received_at", "kiosk_id, seq"),
    ("mint_counts", "actor, minute, kid, scenario, n", "actor, minute, kid, scenario"),
    ("audit", "id, at, actor, action, target, detail, prev_hash, hash", "id"),
    ("imports", "digest, line, applied, failed, updated_at", "digest"),
)
# devices.current_idx points at offline_codes, which are copied after devices: set once both are in.
IDENTITIES = (("api_keys", "id"), ("devices", "id"), ("offline_codes", "idx"))


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]
    audit_rows: int
    audit_head: str


def _columns(spec: str) -> list[str]:
    return [c.strip() for c in spec.split(",")]


def copy_to(source: SqlStorage, target: PostgresStorage) -> CopyReport:
    """Copy every row of ``source`` into the empty ``target`` and check the result.

    Raises:
        Conflict: the target already holds an issuer (subjects, keys or audit rows), or the copy does
            not match the source (then nothing is kept: the transaction is rolled back).
        StorageUnavailable: either database went away (nothing kept).
    """
    with target._read() as c:
        held = [t for t in ("subjects", "signing_keys", "audit") if c.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
    if held:
        raise Conflict(
            f"the target database is not empty ({', '.join(held)} hold rows): copy only into a new database",
            f"目标数据库不是空的（{', '.join(held)} 中已有数据）：只能复制到新的数据库",
        )
    counts: dict[str, int] = {}
    with target._write() as t:
        for table, spec, order in TABLES:
            names = [c.split()[-1] for c in _columns(spec)]
            target_names = [n if n != "NULL" else "current_idx" for n in names]
            insert = f"INSERT INTO {table} ({', '.join(target_names)}) VALUES ({','.join('?' * len(names))})"
            counts[table] = 0
            offset = 0
            while True:
                with source._read() as s:
                    rows = s.execute(
                        f"SELECT {spec} FROM {table} ORDER BY {order} LIMIT ? OFFSET ?", (CHUNK, offset)
                    ).fetchall()
                if not rows:
                    break
                t.executemany(insert, [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows])
                counts[table] += len(rows)
                offset += len(rows)
        with source._read() as s:
            current = s.execute("SELECT id, current_idx FROM devices WHERE current_idx IS NOT NULL").fetchall()
        t.executemany("UPDATE devices SET current_idx = ? WHERE id = ?", [(idx, i) for i, idx in current])
        for table, column in IDENTITIES:
            t.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" GREATEST(1, (SELECT COALESCE(MAX({column}), 0) FROM {table})), true)"
            )
        t.execute("UPDATE audit_seq SET n = ?", (source.audit_high_water(),))
        for table, _, _ in TABLES:
            copied = int(t.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            if copied != counts[table]:
                raise Conflict(
                    f"{table}: {copied} rows copied of {counts[table]}",
                    f"{table}：复制了 {copied} 行，应为 {counts[table]} 行",
                )
    report = verify_chain(target.audit_rows(), target.audit_high_water())
    if not report.ok or target.audit_head() != source.audit_head():
        raise Conflict(
            f"the copied audit chain does not verify: {'; '.join(report.problems) or 'another head'}",
            f"复制后的审计链校验失败：{'; '.join(report.problems) or '链头不同'}",
        )
    return CopyReport(counts, report.rows, report.head)
