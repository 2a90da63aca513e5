"""Paper codes and phones (device credentials): their status-list entries, and the list's snapshot."""

from __future__ import annotations

from issuer.errors import Conflict, DeviceLimit, DeviceRevoked, NotFound, Problem
from issuer.storage.records import REVOKED, SUSPENDED, VALID, DeviceIssue, OfflineCodeRecord, StatusSnapshot
from issuer.storage.sql_base import SqlBase


class CodesSql(SqlBase):
    """Paper codes and devices: each holds status-list entries (one table, one index space)."""

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
                raise NotFound(Problem.NO_OFFLINE_CODE, index=index)
            if row[0] == state:
                return False
            if row[0] not in (VALID, SUSPENDED):
                raise Conflict(Problem.OFFLINE_CODE_REVOKED, index=index)
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
                raise DeviceRevoked()
            index: int | None
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
                raise NotFound(Problem.NO_DEVICE_CREDENTIAL, index=index)
            device_id, subject, current, revoked_at = row
            if revoked_at is not None:
                return False
            c.execute("UPDATE devices SET revoked_at = ?, current_idx = NULL WHERE id = ?", (now, device_id))
            if current is not None:
                c.execute("UPDATE offline_codes SET state = ? WHERE idx = ?", (REVOKED, current))
                self._status_lists_changed(c)
            self._audit(c, now, actor, "device.revoke", subject, {"device": int(device_id), "index": current})
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
