"""The pseudonym keys (docs/format.md §4): what turns a person's subject id into the ``sub`` of each code.

They live in their own file, ``keys/pseudonym.key`` (0600, JSON; encrypted with ``SUISHENMA_KEY_PASSPHRASE``
like ``data.key`` when the keys beside it are), never in the database and never on a verifier. The newest
key makes every new pseudonym; retired keys stay in the file so that older scan logs still resolve
(``keys rotate-pseudonym``). Without the file nothing resolves: a copy of the database and of every scan
log links no code to a person.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from issuer.errors import Problem, SealError
from issuer.files import private_dir, write_private
from issuer.keys.sealing import box_secret, unbox_secret
from issuer.storage.protocols import AuditStore
from suishenma import PseudonymKey

PSEUDONYM_KEY_FILE = "pseudonym.key"
_LABEL = b"suishenma/pseudonym.key"
_MAX_FILE = 1 << 20


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
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_FILE + 1)
    except FileNotFoundError:
        if not create:
            raise SealError(Problem.PSEUDONYM_KEY_MISSING, path=path) from None
        keys = PseudonymKeys((PseudonymKey.generate(),))
        save_pseudonym_keys(keys_dir, keys, passphrase)
        return keys
    except OSError as exc:
        raise SealError(Problem.DATA_KEY_UNREADABLE, path=path, why=exc.strerror) from None
    damaged = SealError(Problem.DATA_KEY_DAMAGED, path=path)
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and "encrypted" in body:
            body = json.loads(unbox_secret(body, passphrase, path, _LABEL))
        secrets = [base64.b64decode(k, validate=True) for k in body["keys"]]
        if not secrets:
            raise damaged
        return PseudonymKeys(tuple(PseudonymKey(s) for s in secrets))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise damaged from None


def save_pseudonym_keys(keys_dir: Path, keys: PseudonymKeys, passphrase: bytes | None = None) -> None:
    """Write the file atomically, 0600, encrypted with ``passphrase`` when given. Raises: OSError."""
    private_dir(keys_dir)
    body = {"keys": [base64.b64encode(k.secret).decode() for k in keys.keys]}
    plain = (json.dumps(body, indent=1) + "\n").encode()
    write_private(
        pseudonym_key_path(keys_dir), box_secret(plain, passphrase, _LABEL) if passphrase is not None else plain
    )


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
