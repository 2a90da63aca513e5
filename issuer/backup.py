"""``suishenma-issuer backup`` and ``restore``: a consistent copy of an issuer taken while it serves, and the
drill that brings it back and proves it whole (README, "Operations").

A backup folder holds the database (SQLite's online backup API, one consistent snapshot; or ``pg_dump`` in
its custom format, one transaction) and ``backup.json``: when it was taken, the backend, the audit log's
head at that moment, and every file beside the database that the issuer cannot work without, each with its
SHA-256 (the data key, without which no sealed name or ID number opens again; the pseudonym key; the signing
keys; the root's public key; the issuer's identity; the audit checkpoint). With ``--with-keys`` those files
are copied too (0600): then the folder is as secret as ``keys/`` and must be kept like it. Without, they
are only listed, and ``restore`` checks the ones found in the target's ``keys/`` against their digests.

``restore`` writes only into an issuer that holds nothing yet (no database file; an empty PostgreSQL
database), then checks what it restored: the audit chain end to end and against the checkpoint, and the
sealed names opening with the data key. It reports what it found; a restore whose checks fail exits 1 and
says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from issuer.errors import Conflict, InputError, Problem
from issuer.files import FILE_MODE, private_dir
from issuer.keys.checkpoints import verify_audit
from issuer.opening import open_storage
from issuer.settings import Settings
from issuer.signing_health import require_initialised
from issuer.storage.sql import SqlStorage

MANIFEST = "backup.json"
SQLITE_COPY = "issuer.db"
PG_DUMP = "issuer.pgdump"
FORMAT = 1


@dataclass(frozen=True)
class FileEntry:
    """A file the issuer needs beside its database: where it lives under the issuer's folder."""

    path: str  # relative to the issuer's folder, e.g. keys/data.key
    sha256: str
    copied: bool
    why: str


@dataclass
class RestoreReport:
    backend: str
    audit_rows: int
    audit_head: str
    checkpoint_seq: int | None
    names_opened: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def backup(settings: Settings, out: Path, *, with_keys: bool) -> dict[str, object]:
    """Copy the database and list (or copy) the files beside it into the new folder ``out``; return the manifest.

    Raises:
        Conflict: ``out`` exists and is not empty.
        InputError: ``pg_dump`` is missing or fails (nothing is left in ``out`` but what was written).
        StorageUnavailable: the database cannot be reached.
    """
    require_initialised(settings)
    if out.exists() and any(out.iterdir()):
        raise Conflict(Problem.BACKUP_TARGET_NOT_EMPTY, path=str(out))
    private_dir(out)
    storage = open_storage(settings)
    try:
        # The files first, the database after: the checkpoint copied then vouches for a log the copy of
        # the database holds all of (a checkpoint newer than the copy would make it look cut).
        files = [_entry(settings, rel, why, out if with_keys else None) for rel, why in needed_files(settings, storage)]
        seq, head = storage.audit_head()
        if settings.database_url:
            _pg_tool("pg_dump", "--format=custom", "--no-owner", f"--file={out / PG_DUMP}", settings.database_url)
            database = PG_DUMP
        else:
            _sqlite_backup(settings.db_path, out / SQLITE_COPY)
            database = SQLITE_COPY
    finally:
        storage.close()
    manifest: dict[str, object] = {
        "format": FORMAT,
        "taken_at": int(time.time()),
        "issuer_id": settings.issuer_id,
        "backend": "postgresql" if settings.database_url else "sqlite",
        "database": database,
        "audit_seq_at_start": seq,
        "audit_head_at_start": head,
        "files": [e.__dict__ for e in files],
    }
    _write_private(out / MANIFEST, json.dumps(manifest, indent=2).encode())
    return manifest


def needed_files(settings: Settings, storage: SqlStorage) -> list[tuple[str, str]]:
    """(path under the issuer's folder, why it matters) of each file that exists and a restore needs."""
    keys = settings.keys_path
    wanted = [
        (keys / "data.key", "the data key: every sealed name and ID number opens only with it"),
        (keys / "pseudonym.key", "the pseudonym key: traces of codes already shown need it"),
        (keys / "root.pub", "the root's public key the trust list is checked against"),
        (keys / "root.key", "the root key (development only: in production it stays offline)"),
        (settings.path(Path("var/identity.json")), "the issuer id chosen at init"),
        (settings.audit_checkpoint_path, "the last signed audit checkpoint"),
    ]
    for rec in storage.signing_keys():
        private = keys / rec.path
        wanted.append((private, f"signing key {rec.kid}" + (" (retired)" if rec.retired_at else "")))
        wanted.append((private.with_suffix(".pub"), f"public key {rec.kid}"))
    base = settings.base_dir.resolve()
    out = []
    for path, why in wanted:
        if path.is_file():
            out.append((str(path.resolve().relative_to(base)), why))
    return out


def restore(settings: Settings, src: Path) -> RestoreReport:
    """Restore the backup in ``src`` into the issuer ``settings`` names, which must hold nothing yet; then check it.

    Raises:
        InputError: not a backup folder, a file it lists missing or different, ``pg_restore`` failing.
        Conflict: the target already holds a database (a file, or a PostgreSQL database with tables).
    """
    try:
        manifest = json.loads((src / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(Problem.BACKUP_UNREADABLE, path=str(src), detail=str(exc)) from None
    if manifest.get("format") != FORMAT:
        raise InputError(Problem.BACKUP_UNREADABLE, path=str(src), detail=f"format {manifest.get('format')!r}")
    pg = bool(settings.database_url)
    if pg != (manifest["backend"] == "postgresql"):
        raise InputError(Problem.BACKUP_OTHER_BACKEND, backend=manifest["backend"])
    _refuse_if_occupied(settings)
    # Every file checked before anything is written: a restore that cannot finish changes nothing.
    base, to_copy = settings.base_dir, []
    for f in manifest["files"]:
        held = src / f["path"] if f["copied"] else base / f["path"]
        if not held.is_file():
            raise InputError(Problem.BACKUP_FILE_MISSING, path=f["path"], why=f["why"])
        if _sha256(held) != f["sha256"]:
            raise InputError(Problem.BACKUP_FILE_DIFFERS, path=f["path"], why=f["why"])
        if f["copied"]:
            to_copy.append(f["path"])
    if pg:  # one transaction: all of it, or nothing
        dump = str(src / PG_DUMP)
        _pg_tool(
            "pg_restore",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={settings.database_url}",
            dump,
        )
    else:  # beside its name first, then renamed: a crash leaves no half database
        private_dir(settings.db_path.parent)
        partial = settings.db_path.with_name(settings.db_path.name + ".restoring")
        _write_private(partial, (src / SQLITE_COPY).read_bytes())
        os.replace(partial, settings.db_path)
    for rel in to_copy:
        private_dir((base / rel).parent)
        _write_private(base / rel, (src / rel).read_bytes())
    return check_restored(settings, int(manifest["audit_seq_at_start"]))


def check_restored(settings: Settings, seq_at_start: int) -> RestoreReport:
    """The audit chain end to end and against the checkpoint, and every sealed name opening."""
    storage = open_storage(settings)
    try:
        verdict = verify_audit(settings, storage)
        opened, problems = 0, list(verdict.problems)
        if verdict.chain.rows < seq_at_start:
            problems.append(f"the audit log ends at {verdict.chain.rows}, before the {seq_at_start} rows backed up")
        after = ""
        while batch := storage.subjects_sealed(after, 1000):
            for subject, _, _ in batch:
                record = storage.subject_get(subject)
                try:
                    if record is not None and record.name:
                        opened += 1
                except Exception as exc:  # SealError: the data key does not open it
                    problems.append(f"the name of {subject} does not open: {exc}")
                    break
            after = batch[-1][0]
        backend = "postgresql" if settings.database_url else "sqlite"
        cp = verdict.checkpoint.seq if verdict.checkpoint else None
        return RestoreReport(backend, verdict.chain.rows, verdict.chain.head, cp, opened, problems)
    finally:
        storage.close()


def _refuse_if_occupied(settings: Settings) -> None:
    """Raises: Conflict when the target already holds an issuer's database."""
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        if tables and tables[0]:
            raise Conflict(Problem.RESTORE_TARGET_NOT_EMPTY, target="PostgreSQL database")
    elif settings.db_path.exists():
        raise Conflict(Problem.RESTORE_TARGET_NOT_EMPTY, target=str(settings.db_path))


def _sqlite_backup(source: Path, target: Path) -> None:
    """SQLite's online backup: one consistent snapshot, taken while other connections write."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.close(fd)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _pg_tool(name: str, *args: str) -> None:
    """Run ``pg_dump`` or ``pg_restore`` (from PATH, else the newest PostgreSQL's bin folder).

    Raises: InputError when it is missing or fails (its message, with no password, is the detail).
    """
    tool = shutil.which(name)
    if tool is None:
        found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parent.parent.name))
        tool = str(found[-1]) if found else None
    if tool is None:
        raise InputError(Problem.BACKUP_TOOL_FAILED, tool=name, detail="not installed (Debian: postgresql-client)")
    run = subprocess.run([tool, *args], capture_output=True, text=True, timeout=3600)
    if run.returncode != 0:
        raise InputError(Problem.BACKUP_TOOL_FAILED, tool=name, detail=run.stderr.strip()[-500:])


def _entry(settings: Settings, rel: str, why: str, out: Path | None) -> FileEntry:
    path = settings.base_dir / rel
    if out is not None:
        private_dir((out / rel).parent)
        _write_private(out / rel, path.read_bytes())
    return FileEntry(rel, _sha256(path), out is not None, why)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
