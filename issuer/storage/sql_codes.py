"""Paper codes and phones (device credentials): their status-list entries, and the list's snapshot."""

from __future__ import annotations

import random
from collections.abc import Sequence

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
# Stores the free ones of a round's candidates (a row whose holder expired long enough ago is replaced).
_PLACE = (
    "INSERT INTO offline_codes (idx, subject, kid, issued_at, expires_at, device_id) VALUES {}"
    " ON CONFLICT (idx) DO UPDATE SET subject = excluded.subject, kid = excluded.kid,"
    " issued_at = excluded.issued_at, expires_at = excluded.expires_at, device_id = excluded.device_id,"
    " state = 0, auto_suspended = 0 WHERE offline_codes.expires_at <= ? RETURNING idx"
)
Entry = tuple[str, str, int, int, int | None]  # subject, kid, issued_at, expires_at, device_id


class CodesSql(SqlBase):
    """Paper codes and devices: each holds status-list entries (one table, one index space)."""

    # --- the index space ---------------------------------------------------------------------------------
    def _place_entries(self, c: Tx, entries: Sequence[Entry], capacity: int, now: int) -> list[int]:
        """Store each entry (subject, kid, issued_at, expires_at, device_id) at a status-list index drawn at
        random among the free ones; return the indices in the entries' order.

        Free: never used, or its last holder expired ``REUSE_AFTER_S`` ago (that row is replaced, state
        valid), so that no index ever names two live entries and an index says nothing about who held it
        before. The space is the list's size (the capacity, doubled until it holds the highest index); after
        ``_DRAWS`` occupied draws the list grows, and the draw moves to its new half. A round's candidates
        are tried in one statement, which stores those that are free: an audited write holds the audit
        chain's lock, so its round trips are what the city's issuing rate is made of.
        """
        top = int(c.execute("SELECT COALESCE(MAX(idx), 0) FROM offline_codes").fetchone()[0])
        low, high = 1, capacity
        while high <= top:
            high *= 2
        placed: dict[int, int] = {}  # entry's position -> its index
        occupied = 0
        while len(placed) < len(entries):
            room = high - low - sum(low <= i < high for i in placed.values())
            if room == 0:  # a tiny list, filled by this very call
                low, high, occupied = high, high * 2, 0
                continue
            waiting = [pos for pos in range(len(entries)) if pos not in placed][:room]
            picks: list[int] = []
            while len(picks) < len(waiting):
                index = _RANDOM.randrange(low, high)
                if index not in picks and index not in placed.values():
                    picks.append(index)
            values = [v for pos, index in zip(waiting, picks, strict=True) for v in (index, *entries[pos])]
            marks = ",".join(["(?,?,?,?,?,?)"] * len(picks))
            taken = {int(r[0]) for r in c.execute(_PLACE.format(marks), [*values, now - REUSE_AFTER_S]).fetchall()}
            for pos, index in zip(waiting, picks, strict=True):
                if index in taken:
                    placed[pos] = index
                    continue
                occupied += 1
                if occupied == _DRAWS:
                    low, high, occupied = high, high * 2, 0
        return [placed[pos] for pos in range(len(entries))]

    # --- paper codes --------------------------------------------------------------------------------------
    def offline_issue(
        self, subject: str, kid: str, expires_at: int, now: int, actor: str, capacity: int = DEFAULT_CAPACITY
    ) -> int:
        with self._write() as c:
            (index,) = self._place_entries(c, [(subject, kid, now, expires_at, None)], capacity, now)
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
            # a renewal, the usual request, is found and stamped in one statement
            row = c.execute(
                "UPDATE devices SET last_issued_at = ? WHERE subject = ? AND thumbprint = ? AND revoked_at IS NULL"
                " RETURNING id",
                (issue.at, issue.subject, issue.thumbprint),
            ).fetchone()
            device_id = int(row[0]) if row is not None else self._register_device(c, issue, max_devices)
            entries = [(issue.subject, issue.kid, start, end, device_id) for start, end in issue.slots]
            indices = self._place_entries(c, entries, capacity, issue.at)
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

    def _register_device(self, c: Tx, issue: DeviceIssue, max_devices: int) -> int:
        """Raises: DeviceRevoked (the phone's key was revoked), DeviceLimit."""
        if c.execute(
            "SELECT 1 FROM devices WHERE subject = ? AND thumbprint = ?", (issue.subject, issue.thumbprint)
        ).fetchone():
            raise DeviceRevoked()
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
        return device_id

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
