"""The SQLite schema, as numbered migrations: each entry moves ``PRAGMA user_version`` one up. Append only."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from issuer.storage.protocols import FieldSealer
from issuer.storage.records import normalise_id_number
from suishenma.masking import mask_id_number, mask_name

Step = str | Callable[[sqlite3.Connection, FieldSealer], None]


def _seal_subjects(conn: sqlite3.Connection, sealer: FieldSealer) -> None:
    """4: names and ID numbers sealed, with their masked forms and the ID number's keyed hash; the clear
    columns are dropped (``migrate`` then vacuums, so no free page keeps the old text)."""
    for column in ("masked_name TEXT NOT NULL DEFAULT ''", "masked_id TEXT NOT NULL DEFAULT ''"):
        conn.execute(f"ALTER TABLE subjects ADD COLUMN {column}")
    for column in ("name_sealed", "id_sealed", "id_lookup"):
        conn.execute(f"ALTER TABLE subjects ADD COLUMN {column} BLOB")
    for subject, name, id_number in conn.execute("SELECT subject, name, id_number FROM subjects").fetchall():
        id_number = normalise_id_number(id_number)
        conn.execute(
            "UPDATE subjects SET masked_name = ?, masked_id = ?, name_sealed = ?, id_sealed = ?, id_lookup = ?"
            " WHERE subject = ?",
            (
                mask_name(name),
                mask_id_number(id_number),
                sealer.seal(name, "name", subject),
                sealer.seal(id_number, "id_number", subject),
                sealer.lookup(id_number),
                subject,
            ),
        )
    conn.execute("DROP INDEX subjects_id_number")
    conn.execute("ALTER TABLE subjects DROP COLUMN name")
    conn.execute("ALTER TABLE subjects DROP COLUMN id_number")
    conn.execute("CREATE INDEX subjects_id_lookup ON subjects(id_lookup)")


MIGRATIONS: tuple[Step, ...] = (
    """
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, key_hash BLOB NOT NULL UNIQUE,
        scopes TEXT NOT NULL, rate_per_s REAL NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
    CREATE TABLE subjects (
        subject TEXT PRIMARY KEY, name TEXT NOT NULL, id_number TEXT NOT NULL,
        status TEXT NOT NULL, status_reason TEXT NOT NULL, status_until INTEGER,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY, alg TEXT NOT NULL, path TEXT NOT NULL, created_at INTEGER NOT NULL,
        retired_at INTEGER, last_expiry INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE offline_codes (
        idx INTEGER PRIMARY KEY, subject TEXT NOT NULL REFERENCES subjects(subject), kid TEXT NOT NULL,
        issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0,
        auto_suspended INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX offline_codes_subject ON offline_codes(subject);
    CREATE INDEX offline_codes_nonvalid ON offline_codes(state) WHERE state != 0;
    CREATE TABLE lists (
        name TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL, etag TEXT NOT NULL,
        issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, dirty INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE scan_logs (
        kiosk_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, scenario TEXT NOT NULL,
        decision TEXT NOT NULL, reason TEXT NOT NULL, subject TEXT, issuer TEXT, received_at INTEGER NOT NULL,
        PRIMARY KEY (kiosk_id, seq)) WITHOUT ROWID;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    """,
    # 2: look-ups of ID numbers at enrolment. Not UNIQUE: a database enrolled twice before this check must
    # still open; subject_create refuses new duplicates inside its write transaction.
    """
    CREATE INDEX subjects_id_number ON subjects(id_number);
    """,
    # 3: device-bound codes. A device is a phone's key registered for a person; each of its status-list
    # indices is a row of offline_codes (the table holds every status-list entry) naming the device.
    """
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY, subject TEXT NOT NULL REFERENCES subjects(subject), thumbprint TEXT NOT NULL,
        alg TEXT NOT NULL, current_idx INTEGER, created_at INTEGER NOT NULL, last_issued_at INTEGER NOT NULL,
        revoked_at INTEGER, UNIQUE (subject, thumbprint));
    ALTER TABLE offline_codes ADD COLUMN device_id INTEGER REFERENCES devices(id);
    CREATE INDEX offline_codes_device ON offline_codes(device_id) WHERE device_id IS NOT NULL;
    """,
    _seal_subjects,
    # 5: per-minute mint counters (minting is not audited row by row), rate buckets and leases shared by
    # every worker process.
    """
    CREATE TABLE mint_counts (
        actor TEXT NOT NULL, minute INTEGER NOT NULL, kid TEXT NOT NULL, scenario TEXT NOT NULL,
        n INTEGER NOT NULL, PRIMARY KEY (actor, minute, kid, scenario)) WITHOUT ROWID;
    CREATE TABLE rate_buckets (key_id INTEGER PRIMARY KEY, tokens REAL NOT NULL, stamp REAL NOT NULL);
    CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT NULL);
    """,
    # 6: how far each ``status import`` file has come, written with each batch it applies.
    """
    CREATE TABLE imports (
        digest TEXT PRIMARY KEY, line INTEGER NOT NULL, applied INTEGER NOT NULL, failed INTEGER NOT NULL,
        updated_at INTEGER NOT NULL);
    """,
    # 7: every published status-list version's content digest and the delta from the version before it
    # (NULL when that version's content was not at hand), kept for the delta window.
    """
    CREATE TABLE list_versions (
        name TEXT NOT NULL, version INTEGER NOT NULL, digest BLOB NOT NULL, size INTEGER NOT NULL,
        issued_at INTEGER NOT NULL, delta BLOB, PRIMARY KEY (name, version)) WITHOUT ROWID;
    """,
    # 8: the newest signed audit checkpoint, shared by every worker and node (one writes it, under a lease).
    """
    CREATE TABLE audit_checkpoints (
        issuer TEXT PRIMARY KEY, seq INTEGER NOT NULL, body BLOB NOT NULL, issued_at INTEGER NOT NULL);
    """,
)
SEALING_STEP = 4  # the migration after which no clear name or ID number is left
