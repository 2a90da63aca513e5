"""Which backend the settings name: PostgreSQL when ``database_url`` is set, else the SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from issuer.files import tighten_private_dir
from issuer.keys.sealing import Sealer, data_key_path, load_sealer
from issuer.keys.signing_keys import passphrase_for_new_keys
from issuer.settings import Settings
from issuer.storage.sql import SqlStorage
from issuer.storage.sqlite_migrations import SEALING_STEP
from suishenma import passphrase_from_env

VAR_DIR = Path("var")  # the issuer's own state beside (or instead of) the database: identity, checkpoints


def open_storage(
    settings: Settings, *, create: bool = False, private_data: bool = True, max_connections: int = 8
) -> SqlStorage:
    """The configured storage, migrated to the newest schema.

    The data key (``keys/data.key``) is made when missing only where nothing sealed can exist yet: with
    ``create`` (``init``, ``db copy``), or for an SQLite file from before names were sealed, which
    opening then seals. A missing key beside sealed data is an error, never replaced. Without
    ``private_data`` the data key is not opened (``audit verify`` may run on a copy of the database alone;
    ``serve`` first checks it can sign): anything that would open a name then raises ``SealError``, until
    ``data_sealer`` is set as the storage's ``sealer``. An existing ``var/`` of this user is tightened to
    0700 (``files.tighten_private_dir``).

    Raises:
        SealError: no usable data key.
        StorageUnavailable: PostgreSQL cannot be reached.
        OSError, RuntimeError: the SQLite file cannot be opened, or its schema is newer than this software.
    """
    tighten_private_dir(settings.path(VAR_DIR))
    may_create = create or (not settings.database_url and not _sealed(settings.db_path))
    sealer = _sealer(settings, may_create, private_data)
    if settings.database_url:
        from issuer.storage.postgres import PostgresStorage  # psycopg only where PostgreSQL is used

        return PostgresStorage(settings.database_url, sealer, max_connections=max_connections)
    from issuer.storage.sqlite import SQLiteStorage

    return SQLiteStorage(settings.db_path, sealer, settings.sqlite_synchronous)


def data_sealer(settings: Settings) -> Sealer:
    """The data key, opened with ``SUISHENMA_KEY_PASSPHRASE`` when it is encrypted. Raises: SealError."""
    return load_sealer(settings.keys_path, passphrase_from_env())


def _sealer(settings: Settings, create: bool, private_data: bool) -> Sealer:
    if not private_data and not create:
        return Sealer.locked(f"{data_key_path(settings.keys_path)} was not opened")
    # new keys follow the keystore: encrypted when the keys beside them are (KeysEncrypted without a passphrase)
    passphrase = passphrase_for_new_keys(settings) if create else passphrase_from_env()
    return load_sealer(settings.keys_path, passphrase, create=create)


def _sealed(path: Path) -> bool:
    """Whether the SQLite file may hold sealed names (its schema reached the sealing step). Read from the
    file's header (user_version, offset 60) unless a WAL may hold a newer one: opening the file would
    leave side files behind even when the command then stops."""
    if not path.is_file() or path.stat().st_size < 100:
        return False
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0]) >= SEALING_STEP
        finally:
            conn.close()
    with path.open("rb") as f:
        header = f.read(100)
    return int.from_bytes(header[60:64], "big") >= SEALING_STEP
