"""The pseudonym keys (docs/format.md §4): what turns a person's subject id into the ``sub`` of each code.

They live in their own file, ``keys/pseudonym.key`` (0600, JSON; encrypted with ``SUISHENMA_KEY_PASSPHRASE``
like ``data.key`` when the keys beside it are), never in the database and never on a verifier. The newest
key makes every new pseudonym; retired keys stay in the file so that older scan logs still resolve
(``keys rotate-pseudonym``). Without the file nothing resolves: a copy of the database and of every scan
log links no code to a person.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from issuer.errors import Problem, SealError
from issuer.keys.sealing import read_key_file, write_key_file
from issuer.storage.protocols import AuditStore
from suishenma import PseudonymKey, UsageError

PSEUDONYM_KEY_FILE = "pseudonym.key"
_LABEL = b"suishenma/pseudonym.key"


@dataclass(frozen=True)
class PseudonymKeys:
    """Every pseudonym key by kid, newest last; the last makes new pseudonyms."""

    keys: tuple[PseudonymKey, ...]

    @property
    def current(self) -> PseudonymKey:
        return self.keys[-1]

    def rotated(self) -> PseudonymKeys:
        return PseudonymKeys((*self.keys, PseudonymKey.generate()))

    def candidates(self, pseudonym: bytes) -> list[tuple[str, bytes]]:
        """(kid, subject id) for each key, newest first: which one names a person is the caller's check.

        Raises:
            UsageError: not a pseudonym's length.
        """
        return [(key.kid, key.open(pseudonym)[0]) for key in reversed(self.keys)]


def pseudonym_key_path(keys_dir: Path) -> Path:
    return keys_dir / PSEUDONYM_KEY_FILE


def load_pseudonym_keys(keys_dir: Path, passphrase: bytes | None = None, *, create: bool = False) -> PseudonymKeys:
    """The keys in ``keys_dir/pseudonym.key``; with ``create``, a new file with one key when there is none.

    Raises:
        SealError: missing (without ``create``), unreadable or damaged; or encrypted and ``passphrase`` is
            missing or wrong.
        OSError: a new file cannot be written.
    """
    path = pseudonym_key_path(keys_dir)
    body = read_key_file(path, passphrase, _LABEL)
    if body is None:
        if not create:
            raise SealError(Problem.PSEUDONYM_KEY_MISSING, path=path)
        keys = PseudonymKeys((PseudonymKey.generate(),))
        save_pseudonym_keys(keys_dir, keys, passphrase)
        return keys
    try:
        keys = PseudonymKeys(tuple(PseudonymKey(base64.b64decode(k, validate=True)) for k in body["keys"]))
    except (ValueError, KeyError, TypeError, AttributeError, UsageError):
        keys = PseudonymKeys(())
    if not keys.keys:
        raise SealError(Problem.DATA_KEY_DAMAGED, path=path)
    return keys


def save_pseudonym_keys(keys_dir: Path, keys: PseudonymKeys, passphrase: bytes | None = None) -> None:
    """Write the file atomically, 0600, encrypted with ``passphrase`` when given. Raises: OSError."""
    body = {"keys": [base64.b64encode(k.secret).decode() for k in keys.keys]}
    write_key_file(pseudonym_key_path(keys_dir), body, passphrase, _LABEL)


def rotate_pseudonym_keys(
    keys_dir: Path, storage: AuditStore, passphrase: bytes | None, now: int, actor: str
) -> tuple[str, str]:
    """Add a new pseudonym key that makes every pseudonym from now on; the older ones stay to resolve older
    scan logs. Audited. Returns (previous kid, new kid).

    Raises:
        SealError: the file is missing, unreadable or damaged, or does not open with ``passphrase``.
        OSError: it cannot be written (nothing changed).
    """
    keys = load_pseudonym_keys(keys_dir, passphrase)
    rotated = keys.rotated()
    save_pseudonym_keys(keys_dir, rotated, passphrase)
    old, new = keys.current.kid, rotated.current.kid
    storage.audit_event("pseudonym_key.rotate", new, {"previous": old, "keys": len(rotated.keys)}, now, actor)
    return old, new
