"""API keys, signing keys, and what workers and nodes share: rate buckets, leases and mint counters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from issuer.errors import Conflict, NotFound, Problem
from issuer.storage.records import ApiKeyRecord, MintCount, SigningKeyRecord
from issuer.storage.sql_base import SqlBase


class KeysSql(SqlBase):
    """API keys, signing keys, rate buckets and leases shared by workers, per-minute mint counters."""

    # --- API keys -----------------------------------------------------------------------------------------
    def api_key_create(
        self, name: str, key_hash: bytes, scopes: Sequence[str], rate_per_s: float, now: int, actor: str
    ) -> int:
        """Raises: Conflict: a key of that name exists."""
        with self._write() as c:
            if c.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
                raise Conflict(Problem.API_KEY_EXISTS, name=name)
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
                raise NotFound(Problem.NO_API_KEY, name=name)
            if row[0] is not None:
                return False
            c.execute("UPDATE api_keys SET revoked_at = ? WHERE name = ?", (now, name))
            self._audit(c, now, actor, "api_key.revoke", name, {})
            return True

    def api_keys(self) -> list[ApiKeyRecord]:
        with self._read() as c:
            rows = c.execute("SELECT id, name, scopes, rate_per_s, revoked_at FROM api_keys ORDER BY id").fetchall()
        return [self._api_key(r) for r in rows]

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
                raise Conflict(Problem.KEY_ROTATED_MEANWHILE, kid=old_kid)
            c.execute(
                "INSERT INTO signing_keys (kid, alg, path, created_at) VALUES (?, ?, ?, ?)", (kid, alg, path, now)
            )
            self._audit(c, now, actor, "key.add", kid, {"alg": alg})
            self._audit(c, now, actor, "key.retire", old_kid, {})

    # --- minting ------------------------------------------------------------------------------------------
    def signing_key_extend(self, kid: str, expires_at: int) -> None:
        if expires_at > self._expiry_marks.get(kid, 0):  # most calls: already covered, no write
            with self._write(serial=False) as c:
                self._raise_last_expiry(c, kid, expires_at)

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


def _count_key(m: MintCount) -> tuple[str, int, str, str]:
    # One order for every writer: two workers adding the same counters never wait on each other in a cycle.
    return (m.actor, m.minute, m.kid, m.scenario)
