"""SQLite storage details: migrations and background checkpoints."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from issuer.audit import verify_chain
from issuer.sqlite_store import MIGRATIONS, SQLiteStorage
from issuer.storage import AlreadyEnrolled, MintRecord


def test_schema_is_migrated_once_and_recorded(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    SQLiteStorage(db).close()
    SQLiteStorage(db).close()  # reopening applies nothing twice
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_database_enrolled_twice_before_the_id_check_still_opens(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    for subject in ("00000000000000aa", "00000000000000bb"):
        conn.execute(
            "INSERT INTO subjects VALUES (?, '张三', '310101199001011234', 'green', '', NULL, 0, 0)", (subject,)
        )
    conn.commit()
    conn.close()
    store = SQLiteStorage(db)  # migration 2 adds a look-up index, not a constraint old data would break
    assert store.subject_by_id_number("310101199001011234") in ("00000000000000aa", "00000000000000bb")
    with pytest.raises(AlreadyEnrolled):
        store.subject_create("00000000000000cc", "王五", "310101199001011234", 0, "t")
    store.close()


def test_background_checkpointer_runs_and_keeps_the_wal_checkpointed(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "i.db")
    store.checkpoint_in_background(interval=0.01)
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # requests never checkpoint
    checkpointer = store.checkpointer
    assert checkpointer is not None and checkpointer.is_alive()
    now = 1_790_000_000
    for i in range(1500):
        store.record_mint(MintRecord(f"{i:016x}", "ab12cd34", "venue", now + 60, now, "t"))
    written = store.audit_head()[0]
    for _ in range(1000):  # the thread's own checkpoints, observed; the bounds only stop a hang
        checkpointer.checkpointed.clear()
        assert checkpointer.checkpointed.wait(30), "the background checkpointer is not running"
        busy, frames, done = checkpointer.last or (1, 0, 0)
        if busy == 0 and frames > 0 and done == frames:
            break
    assert busy == 0 and frames > 0 and done == frames  # the thread caught up with every write
    report = verify_chain(store.audit_rows(), store.audit_high_water())
    assert report.ok and report.rows == written == 1500
    store.close()
    assert not checkpointer.is_alive()
    wal = tmp_path / "i.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and removed on a clean stop
