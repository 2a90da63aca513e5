"""Paper codes and phones (device credentials): their status-list entries, and the list's snapshot."""

from __future__ import annotations

import random

from issuer.errors import Conflict, DeviceLimit, DeviceRevoked, NotFound, Problem
from issuer.storage.records import (
    DEFAULT_CAPACITY,
    REUSE_AFTER_S,
    REVOKED,
    SUSPENDED,
    VALID,
    DeviceIssue,
    OfflineCodeRecord,
    StatusSnapshot,
)
from issuer.storage.sql_base import SqlBase, Tx

_RANDOM = random.SystemRandom()  # the OS's generator: an index must not be predictable from earlier ones
_DRAWS = 8  # occupied draws before the list grows: at 3/4 full, 1 batch in 10 grows it


class CodesSql(SqlBase):
    """Paper codes and devices: each holds status-list entries (one table, one index space)."""

    # --- the index space ---------------------------------------------------------------------------------
    def _draw_index(self, c: Tx, capacity: int, now: int) -> int:
        """A status-list index drawn at random among the free ones, and cleared for its new holder.

        Free: never used, or its last holder expired ``REUSE_AFTER_S`` ago, so that no index ever names two
        live entries and an index says nothing about who held it before. The space is the list's size (the
        capacity, doubled until it holds the highest index); after ``_DRAWS`` occupied draws the list grows,
        and the draw moves to its new half.
        """
        top = int(c.execute("SELECT COALESCE(MAX(idx), 0) FROM offline_codes").fetchone()[0])
        low, high = 1, capacity
        while high <= top:
            high *= 2
        while True:
            for _ in range(_DRAWS):
                index = _RANDOM.randrange(low, high)
                row = c.execute("SELECT expires_at FROM offline_codes WHERE idx = ?", (index,)).fetchone()
                if row is None:
                    return index
                if int(row[0]) + REUSE_AFTER_S <= now:
                    c.execute("DELETE FROM offline_codes WHERE idx = ?", (index,))
                    return index
            low, high = high, high * 2

    # --- paper codes --------------------------------------------------------------------------------------
    def offline_issue(
        self, subject: str, kid: str, expires_at: int, now: int, actor: str, capacity: int = DEFAULT_CAPACITY
    ) -> int:
        with self._write() as c:
            index = self._draw_index(c, capacity, now)
            c.execute(
                "INSERT INTO offline_codes (idx, subject, kid, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (index, subject, kid, now, expires_at),
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
                raise NotFound(Problem.NO_OFFLINE_CODE, index=index)
            if row[0] == state:
                return False
            if row[0] not in (VALID, SUSPENDED):
                raise Conflict(Problem.OFFLINE_CODE_REVOKED, index=index)
            c.execute("UPDATE offline_codes SET state = ?, auto_suspended = 0 WHERE idx = ?", (state, index))
            self._status_lists_changed(c)
            self._audit(c, now, actor, "offline.state", str(index), {"from": int(row[0]), "to": state})
            return True

    # --- phones -------------------------------------------------------------------------------------------
    def device_batch(self, issue: DeviceIssue, max_devices: int, capacity: int = DEFAULT_CAPACITY) -> list[int]:
        with self._write() as c:
            row = c.execute(
                "SELECT id, revoked_at FROM devices WHERE subject = ? AND thumbprint = ?",
                (issue.subject, issue.thumbprint),
            ).fetchone()
            if row is not None and row[1] is not None:
                raise DeviceRevoked()
            if row is None:
                active = c.execute(
                    "SELECT COUNT(*) FROM devices WHERE subject = ? AND revoked_at IS NULL", (issue.subject,)
                ).fetchone()[0]
                if active >= max_devices:
                    raise DeviceLimit(issue.subject, active)
                device_id = int(
                    c.execute(
                        "INSERT INTO devices (subject, thumbprint, alg, created_at, last_issued_at) VALUES (?,?,?,?,?)"
                        " RETURNING id",
                        (issue.subject, issue.thumbprint, issue.alg, issue.at, issue.at),
                    ).fetchone()[0]
                )
                self._audit(c, issue.at, issue.actor, "device.register", issue.subject, {"device": device_id})
            else:
                device_id = int(row[0])
            indices = []
            for start, end in issue.slots:
                index = self._draw_index(c, capacity, issue.at)
                c.execute(
                    "INSERT INTO offline_codes (idx, subject, kid, issued_at, expires_at, device_id)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (index, issue.subject, issue.kid, start, end, device_id),
                )
                indices.append(index)
            c.execute("UPDATE devices SET last_issued_at = ? WHERE id = ?", (issue.at, device_id))
            last = max((end for _, end in issue.slots), default=issue.at)
            self._raise_last_expiry(c, issue.kid, last)
            detail: dict[str, object] = {
                "device": device_id,
                "indices": indices,
                "kid": issue.kid,
                "slots": [start for start, _ in issue.slots],
                "exp": last,
            }
            self._audit(c, issue.at, issue.actor, "device.batch", issue.subject, detail)
            return indices

    def device_revoke(self, index: int, now: int, actor: str) -> bool:
        with self._write() as c:
            row = c.execute(
                "SELECT d.id, d.subject, d.revoked_at FROM offline_codes o"
                " JOIN devices d ON d.id = o.device_id WHERE o.idx = ? AND o.expires_at > ?",
                (index, now),
            ).fetchone()
            if row is None:
                raise NotFound(Problem.NO_DEVICE_CREDENTIAL, index=index)
            device_id, subject, revoked_at = row
            if revoked_at is not None:
                return False
            c.execute("UPDATE devices SET revoked_at = ?, current_idx = NULL WHERE id = ?", (now, device_id))
            revoked = c.execute(
                "UPDATE offline_codes SET state = ? WHERE device_id = ? AND expires_at > ? AND state != ?"
                " RETURNING idx",
                (REVOKED, device_id, now, REVOKED),
            ).fetchall()
            if revoked:
                self._status_lists_changed(c)
            indices = sorted(int(r[0]) for r in revoked)
            self._audit(c, now, actor, "device.revoke", subject, {"device": int(device_id), "indices": indices})
            return True

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
