"""Names and ID numbers encrypted at rest (DESIGN §6): AES-256-GCM under a data key, and a keyed hash of
the ID number as the look-up index.

The keys live in one file, ``keys/data.key`` (0600, JSON), never in the database: a dump or a lost backup
without the key files reveals no name and no ID number. The file holds every data key by number (the
newest seals, the older ones still open what they sealed until ``keys rotate-data`` has re-sealed every
row) and the look-up key, which does not rotate: the index of every enrolled ID number depends on it.

With ``SUISHENMA_KEY_PASSPHRASE`` set, the file itself is encrypted like the private keys beside it
(scrypt, then AES-256-GCM), so that no secret lies in clear among encrypted keys.

A sealed value is ``version (1) || key number (4, big-endian) || nonce (12) || ciphertext+tag``; the
associated data binds it to its column and its subject, so a sealed value moved to another row or
column does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from issuer.errors import Problem, SealError
from issuer.files import private_dir, write_private
from issuer.storage.records import normalise_id_number as normalise_id_number  # still importable from here

DATA_KEY_FILE = "data.key"
_VERSION = 1
_HEAD = 1 + 4 + 12
_MAX_KEY_FILE = 1 << 20
_DATA_KEY_LABEL = b"suishenma/data.key"  # what a passphrase-encrypted key file's box is bound to


@dataclass
class Sealer:
    """Seals and opens private fields, and hashes ID numbers for look-ups."""

    keys: dict[int, bytes]
    current: int
    lookup_key: bytes
    _aead: dict[int, AESGCM] = field(default_factory=dict, repr=False)
    _locked: str = ""  # why there are no keys (``locked``)

    @classmethod
    def generate(cls) -> Sealer:
        return cls({1: AESGCM.generate_key(256)}, 1, secrets.token_bytes(32))

    @classmethod
    def locked(cls, why: str) -> Sealer:
        """A sealer without keys, for work that never opens private data (``audit verify`` on a copy)."""
        return cls({}, 0, b"", _locked=why)

    def _require_keys(self) -> None:
        if self._locked:
            raise SealError(Problem.DATA_KEY_NOT_OPENED, why=self._locked)

    def seal(self, text: str, column: str, subject: str) -> bytes:
        self._require_keys()
        nonce = os.urandom(12)
        head = bytes([_VERSION]) + self.current.to_bytes(4, "big") + nonce
        return head + self._cipher(self.current).encrypt(nonce, text.encode(), _aad(column, subject))

    def open(self, blob: bytes, column: str, subject: str) -> str:
        """Raises: SealError: not sealed by a key held here, or moved from another row or column, or damaged."""
        self._require_keys()
        blob = bytes(blob)
        if len(blob) < _HEAD + 16 or blob[0] != _VERSION:
            raise SealError(Problem.NOT_SEALED, column=column, subject=subject)
        number = int.from_bytes(blob[1:5], "big")
        if number not in self.keys:
            raise SealError(
                Problem.SEALED_WITH_UNKNOWN_KEY, column=column, subject=subject, number=number, file=DATA_KEY_FILE
            )
        try:
            return self._cipher(number).decrypt(blob[5:17], blob[17:], _aad(column, subject)).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise SealError(Problem.SEAL_DOES_NOT_OPEN, column=column, subject=subject) from None

    def sealed_with(self, blob: bytes) -> int:
        """The number of the data key ``blob`` was sealed with."""
        return int.from_bytes(bytes(blob)[1:5], "big")

    def lookup(self, id_number: str) -> bytes:
        """HMAC-SHA256 of the normalised ID number: equal numbers give equal digests, and without the key
        a digest cannot be tested against the (small) space of ID numbers."""
        self._require_keys()
        return hmac.new(self.lookup_key, normalise_id_number(id_number).encode(), hashlib.sha256).digest()

    def rotated(self) -> Sealer:
        """A sealer whose new data key seals from now on; every older key still opens."""
        number = max(self.keys) + 1
        return Sealer({**self.keys, number: AESGCM.generate_key(256)}, number, self.lookup_key)

    def _cipher(self, number: int) -> AESGCM:
        aead = self._aead.get(number)
        if aead is None:
            aead = self._aead[number] = AESGCM(self.keys[number])
        return aead

    def to_body(self) -> dict[str, object]:
        """What ``data.key`` holds."""
        b64 = base64.b64encode
        return {
            "current": self.current,
            "keys": {str(n): b64(k).decode() for n, k in sorted(self.keys.items())},
            "lookup": b64(self.lookup_key).decode(),
        }


def _aad(column: str, subject: str) -> bytes:
    return f"suishenma/{column}/{subject}".encode()


def data_key_path(keys_dir: Path) -> Path:
    return keys_dir / DATA_KEY_FILE


def load_sealer(keys_dir: Path, passphrase: bytes | None = None, *, create: bool = False) -> Sealer:
    """The sealer from ``keys_dir/data.key``; with ``create``, a new file (0600, encrypted with ``passphrase``
    when given) when there is none.

    Raises:
        SealError: the file is missing (and ``create`` is false), unreadable or damaged; or it is encrypted
            and ``passphrase`` is missing or wrong.
    """
    path = data_key_path(keys_dir)
    body = read_key_file(path, passphrase, _DATA_KEY_LABEL)
    if body is None:
        if not create:
            raise SealError(Problem.DATA_KEY_MISSING, path=path)
        sealer = Sealer.generate()
        save_sealer(keys_dir, sealer, passphrase)
        return sealer
    damaged = SealError(Problem.DATA_KEY_DAMAGED, path=path)
    try:
        keys = {int(n): base64.b64decode(k, validate=True) for n, k in body["keys"].items()}
        sealer = Sealer(keys, int(body["current"]), base64.b64decode(body["lookup"], validate=True))
        if sealer.current not in keys or any(len(k) != 32 for k in keys.values()) or len(sealer.lookup_key) != 32:
            raise damaged
    except (ValueError, KeyError, TypeError, AttributeError):
        raise damaged from None
    return sealer


def read_key_file(path: Path, passphrase: bytes | None, label: bytes) -> Any:
    """The JSON body of a key file of ours (``data.key``, ``pseudonym.key``), opened with ``passphrase`` when
    the file is encrypted; None when there is no file. The caller checks the body's fields.

    Raises:
        SealError: unreadable, not JSON (damaged), or encrypted and the passphrase is missing or wrong.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SealError(Problem.DATA_KEY_UNREADABLE, path=path, why=exc.strerror) from None
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and "encrypted" in body:
            body = json.loads(_unbox(body, passphrase, path, label))
    except (ValueError, KeyError, TypeError):
        raise SealError(Problem.DATA_KEY_DAMAGED, path=path) from None
    return body


def write_key_file(path: Path, body: object, passphrase: bytes | None, label: bytes) -> None:
    """Write a key file atomically, 0600, encrypted with ``passphrase`` when given. Raises: OSError."""
    private_dir(path.parent)
    plain = (json.dumps(body, indent=1) + "\n").encode()
    write_private(path, _box(plain, passphrase, label) if passphrase is not None else plain)


def _kdf(salt: bytes, passphrase: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << 15, r=8, p=1).derive(passphrase)


def _box(plain: bytes, passphrase: bytes, label: bytes = _DATA_KEY_LABEL) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    box = AESGCM(_kdf(salt, passphrase)).encrypt(nonce, plain, label)
    body = {"encrypted": "ENCRYPTED scrypt AES-256-GCM"}
    body.update((k, base64.b64encode(v).decode()) for k, v in (("salt", salt), ("nonce", nonce), ("box", box)))
    return (json.dumps(body) + "\n").encode()


def _unbox(body: dict[str, str], passphrase: bytes | None, path: Path, label: bytes = _DATA_KEY_LABEL) -> bytes:
    """Raises: SealError (passphrase missing or wrong); ValueError, KeyError (damaged)."""
    if passphrase is None:
        raise SealError(Problem.DATA_KEY_PASSPHRASE_MISSING, path=path)
    salt, nonce, box = (base64.b64decode(body[k], validate=True) for k in ("salt", "nonce", "box"))
    try:
        return AESGCM(_kdf(salt, passphrase)).decrypt(nonce, box, label)
    except InvalidTag:
        raise SealError(Problem.DATA_KEY_PASSPHRASE_WRONG, path=path) from None


def save_sealer(keys_dir: Path, sealer: Sealer, passphrase: bytes | None = None) -> None:
    """Write the key file atomically, 0600, encrypted with ``passphrase`` when given. Raises: OSError."""
    write_key_file(data_key_path(keys_dir), sealer.to_body(), passphrase, _DATA_KEY_LABEL)
