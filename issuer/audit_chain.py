"""The hash chain of the audit log: each row commits to the one before it.

A row's hash is SHA-256 over the previous hash and the row's canonical JSON, so editing, inserting or
deleting any row changes every hash after it. Deleting the newest rows is caught by the database's
AUTOINCREMENT high-water mark (see ``SQLiteStorage.audit_high_water``), which a forger can reset; the
signed checkpoints of ``keys/checkpoints.py`` and a head hash recorded elsewhere (``--expect-head``) catch that,
and a chain recomputed after an edit, from outside the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: int
    actor: str
    action: str
    target: str
    detail: str  # canonical JSON
    prev_hash: str
    hash: str


def canonical(detail: dict[str, object]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, row_id: int, at: int, actor: str, action: str, target: str, detail: str) -> str:
    """SHA-256 over the fields, each length-prefixed so that no two rows encode alike."""
    h = hashlib.sha256()
    for field in (prev_hash, str(row_id), str(at), actor, action, target, detail):
        data = field.encode()
        h.update(b"%d:" % len(data))
        h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class AuditReport:
    rows: int
    head: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(rows: Iterable[AuditRow], high_water: int | None = None) -> AuditReport:
    """Check every link; ``high_water`` is the largest id ever assigned (deleted tail rows show there)."""
    problems: list[str] = []
    prev, expected_id, count = GENESIS, 1, 0
    for r in rows:
        count += 1
        if r.id != expected_id:
            problems.append(f"row {expected_id}" + (f" to {r.id - 1}" if r.id - 1 > expected_id else "") + " missing")
        if r.prev_hash != prev:
            problems.append(f"row {r.id}: link to the previous row is broken")
        if row_hash(r.prev_hash, r.id, r.at, r.actor, r.action, r.target, r.detail) != r.hash:
            problems.append(f"row {r.id}: content was edited")
        prev, expected_id = r.hash, r.id + 1
    if high_water is not None and high_water >= expected_id:
        problems.append(f"rows {expected_id} to {high_water} deleted from the end")
    return AuditReport(count, prev, tuple(problems))
