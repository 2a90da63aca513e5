"""Signing keys, published lists, coordination between workers (rate buckets, leases), kiosk scan logs."""

from __future__ import annotations

from collections.abc import Sequence

from . import (
    Conflict,
    PublishedList,
    ScanLogResult,
    ScanRecord,
    SigningKeyRecord,
)
from .sql_base import SqlBase, in_chunks, placeholders


class ListsSql(SqlBase):
    """Signing keys, published lists, rate buckets and leases shared by workers, kiosk scan logs."""

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
            for part in in_chunks(sorted({r.seq for r in records})):
                rows = c.execute(
                    "SELECT seq, at, scenario, decision, reason, subject, issuer FROM scan_logs"
                    f" WHERE kiosk_id = ? AND seq IN ({placeholders(len(part))})",
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
