"""The kiosk's scan-log upload key: read from the environment or a private file, never kept in the
state database (a copied or backed-up database must not carry a credential).

Precedence: ``$SUISHENMA_KIOSK_API_KEY``, then the file named by ``$SUISHENMA_KIOSK_API_KEY_FILE``,
then the file named in the state's configuration (``kiosk_api_key_file``, set by ``init``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from suishenma import UsageError

KIOSK_KEY_ENV = "SUISHENMA_KIOSK_API_KEY"
KIOSK_KEY_FILE_ENV = "SUISHENMA_KIOSK_API_KEY_FILE"
KEY_FILE_NAME = "kiosk-api-key"
MAX_KEY_BYTES = 4096


def write_key_file(path: Path, key: str) -> Path:
    """Write ``key`` to ``path``, mode 0600 from the moment it exists (replacing any older file).

    Raises:
        OSError: the file cannot be written.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key.strip() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_key_file(path: Path, what: str = "kiosk API key file") -> str:
    """The key in ``path``; the file must be readable by its owner only (as ssh demands of its keys).

    Raises:
        UsageError: missing, readable by group or others, too large, or empty.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise UsageError(f"{what} {path} is readable by others (mode {mode:o}): chmod 600 it")
        data = f.read(MAX_KEY_BYTES + 1)
    key = data.decode("utf-8", "replace").strip()
    if not key or len(data) > MAX_KEY_BYTES:
        raise UsageError(f"{what} {path} is empty or too large")
    return key


def kiosk_key(configured_file: str | None) -> str | None:
    """The upload key by the precedence above, or None when none is configured.

    Raises:
        UsageError: a key file is named but cannot be used (see ``read_key_file``).
    """
    if os.environ.get(KIOSK_KEY_ENV):
        return os.environ[KIOSK_KEY_ENV].strip()
    named = os.environ.get(KIOSK_KEY_FILE_ENV) or configured_file
    return read_key_file(Path(named)) if named else None
