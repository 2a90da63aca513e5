"""How far the audit log runs ahead of its newest checkpoint: three indexed reads, for monitoring.

The checkpoint's row (``audit_checkpoints``) is read as stored, not verified: ``audit verify`` is the check of
the log's integrity; this is a cheap look, for a scrape, at whether checkpoints keep up with the log.
"""

from __future__ import annotations

from dataclasses import dataclass

from issuer.storage.sql_base import SqlBase


@dataclass(frozen=True)
class Anchoring:
    """The log's last row ``head_seq``; the newest checkpoint's row ``checkpoint_seq`` (0 without one) and
    its time (None without one); the time of the first row after it (None when every row is covered)."""

    head_seq: int
    checkpoint_seq: int
    checkpoint_at: int | None
    oldest_unanchored_at: int | None

    @property
    def unanchored_rows(self) -> int:
        # Row ids are consecutive (reserved in the transaction that writes them), so a difference counts rows.
        return max(self.head_seq - self.checkpoint_seq, 0)

    def lag(self, now: int) -> int:
        """Seconds since the oldest row no checkpoint covers was written; 0 when every row is covered."""
        if self.oldest_unanchored_at is None:
            return 0
        return max(now - self.oldest_unanchored_at, 0)  # another node's clock may run ahead of ours


def anchoring(storage: SqlBase, issuer: str) -> Anchoring:
    """One consistent look at the log's head and ``issuer``'s checkpoint.

    Raises: whatever the backend raises when the database cannot be read (StorageUnavailable, sqlite3.Error).
    """
    with storage._snapshot() as c:
        head = c.execute("SELECT id FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        cp = c.execute("SELECT seq, issued_at FROM audit_checkpoints WHERE issuer = ?", (issuer,)).fetchone()
        covered = int(cp[0]) if cp else 0
        first = c.execute("SELECT at FROM audit WHERE id > ? ORDER BY id LIMIT 1", (covered,)).fetchone()
    return Anchoring(
        head_seq=int(head[0]) if head else 0,
        checkpoint_seq=covered,
        checkpoint_at=int(cp[1]) if cp else None,
        oldest_unanchored_at=int(first[0]) if first else None,
    )
