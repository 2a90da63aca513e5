"""The issuer's files are private to its user: folders 0700, files 0600.

The database holds names and ID numbers, its WAL holds recent writes, key files hold private keys, and
paper codes are year-long credentials: none of them is for other local users to read. Modes are set
when a file is created (``os.open`` with the mode, then ``fchmod``, which the umask cannot widen or
narrow) rather than by changing the process umask, which is shared by every thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) when it does not exist, the folder itself with mode 0700.

    An existing folder is left as it is: it may be shared on purpose (e.g. ``/srv``).

    Raises:
        OSError: the folder cannot be created.
    """
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)  # a umask can only remove bits from 0700
    return path


def tighten_private_dir(path: Path) -> None:
    """Tighten an existing folder of the issuer's own (``var/``) to 0700 when it is owned by this user:
    versions before made it with the umask's mode (often 0755) when no database file made it first. A
    folder of another user, a symbolic link or a missing folder is left as it is.

    Raises:
        OSError: its mode cannot be read or changed.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 when missing; tighten an existing file to 0600. Never truncates.

    Raises:
        OSError: it cannot be created or its mode changed.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def private_database(path: Path) -> None:
    """Make a SQLite database file 0600 before SQLite opens it, and its WAL, shared-memory and journal
    files too when they exist. SQLite creates those side files with the database file's mode, so a
    0600 database keeps them 0600 from then on.

    Raises:
        OSError: a file cannot be created or its mode changed.
    """
    private_dir(path.parent)
    private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(side, FILE_MODE)


def write_private(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600: a temporary file beside it is written and
    fsynced, renamed over ``path``, then the folder is fsynced so the rename survives a power cut. With
    ``durable`` False the fsyncs are left out (for files nothing needs after a crash, written often).

    Raises:
        OSError: the file cannot be written.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
