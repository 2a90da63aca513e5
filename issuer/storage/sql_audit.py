"""The audit log's reads (rows, head, a row's hash), events with no other change, the checkpoint every node
serves, and kiosk scan logs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from issuer.audit_chain import GENESIS, AuditRow
from issuer.storage.records import Anchoring, ScanLogResult, ScanRecord
from issuer.storage.sql_base import SqlBase, in_chunks, placeholders


class AuditSql(SqlBase):
    """The audit chain as read back (its append is the base's ``_audit``), and the kiosks' scan logs."""

    # --- audit --------------------------------------------------------------------------------------------
    def audit_event(self, action: str, target: str, detail: dict[str, object], now: int, actor: str) -> None:
        with self._write() as c:
            self._audit(c, now, actor, action, target, detail)

    def audit_events(self, events: Sequence[tuple[str, str, dict[str, object]]], now: int, actor: str) -> None:
        with self._write() as c:
            self._audit_many(c, [(now, actor, action, target, detail) for action, target, detail in events])

    def subjects_exist(self, subjects: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._read() as c:
            for part in in_chunks(sorted(set(subjects))):
                rows = c.execute(
                    f"SELECT subject FROM subjects WHERE subject IN ({placeholders(len(part))})", part
                ).fetchall()
                found.update(str(r[0]) for r in rows)
        return found

    def audit_rows(self, chunk: int = 10_000) -> Iterator[AuditRow]:
        """Every audit row in id order, read in chunks so memory stays flat on long logs."""
        last = 0
        while True:
            with self._read() as c:
                rows = c.execute(
                    "SELECT id, at, actor, action, target, detail, prev_hash, hash FROM audit WHERE id > ?"
                    " ORDER BY id LIMIT ?",
                    (last, chunk),
                ).fetchall()
            if not rows:
                return
            for r in rows:
                yield AuditRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])
            last = int(rows[-1][0])

    def audit_head(self) -> tuple[int, str]:
        with self._read() as c:
            row = c.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def audit_hash_at(self, row_id: int) -> str | None:
        with self._read() as c:
            row = c.execute("SELECT hash FROM audit WHERE id = ?", (row_id,)).fetchone()
        return str(row[0]) if row else None

    # --- the shared checkpoint ---------------------------------------------------------------------------
    def anchoring(self, issuer: str) -> Anchoring:
        # Three indexed reads in one snapshot: cheap enough for every scrape.
        with self._snapshot() as c:
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

    def checkpoint_get(self, issuer: str) -> bytes | None:
        with self._read() as c:
            row = c.execute("SELECT body FROM audit_checkpoints WHERE issuer = ?", (issuer,)).fetchone()
        return bytes(row[0]) if row else None

    def checkpoint_put(self, issuer: str, seq: int, body: bytes, issued_at: int) -> bool:
        # Not audited (a checkpoint changes no state, and auditing it would grow the log it vouches for);
        # never moved back to an earlier row.
        with self._write(serial=False) as c:
            row = c.execute(
                "INSERT INTO audit_checkpoints (issuer, seq, body, issued_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (issuer) DO UPDATE SET seq = excluded.seq, body = excluded.body,"
                " issued_at = excluded.issued_at WHERE audit_checkpoints.seq <= excluded.seq RETURNING seq",
                (issuer, seq, body, issued_at),
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

    def scan_log_subjects(self, kiosk_id: str) -> list[str]:
        with self._read() as c:
            rows = c.execute(
                "SELECT DISTINCT subject FROM scan_logs WHERE kiosk_id = ? AND subject IS NOT NULL ORDER BY subject",
                (kiosk_id,),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def scan_log_count(self) -> int:
        with self._read() as c:
            return int(c.execute("SELECT COUNT(*) FROM scan_logs").fetchone()[0])
