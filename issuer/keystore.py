"""The issuer's signing keys on disk and their lifecycle: create, rotate, and which ones the trust list keeps.

Private keys live in ``keys/issuer-<kid>.key`` (0600, encrypted when ``SUISHENMA_KEY_PASSPHRASE`` is
set); the database records only kid, algorithm, file name and dates. Nothing here logs or returns key
material.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from suishenma import (
    Alg,
    IssuerEntry,
    SigningKey,
    load_signing_key,
    load_verification_key,
    passphrase_from_env,
    write_key_pair,
)

from .private import private_dir
from .settings import Settings
from .storage import SigningKeyRecord, Storage

ROOT_KEY = "root"
# A current key is listed as valid this long after it was made; rotation shortens it to the retirement time.
KEY_LIFETIME = 5 * 365 * 86400
# Codes may carry an issue time this far before a key was created (clock skew between issuer nodes).
SKEW = 300


class NoSigningKey(RuntimeError):
    """No usable signing key: run ``suishenma-issuer init``."""


def create_signing_key(settings: Settings, storage: Storage, now: int, actor: str, alg: Alg = Alg.EdDSA) -> str:
    """Make a key pair under keys/, record it, and return its kid (hex).

    Raises:
        KeyFileError: the key file cannot be written (e.g. it exists).
    """
    key = SigningKey.generate(alg)
    kid = key.kid.hex()
    private_dir(settings.keys_path)
    priv, _ = write_key_pair(key, settings.keys_path / f"issuer-{kid}", passphrase_from_env())
    storage.signing_key_add(kid, alg.name, priv.name, now, actor)
    return kid


def create_root_key(settings: Settings) -> Path:
    """Make the development root key pair once; return the private key's path.

    Raises:
        KeyFileError: the key file cannot be written.
    """
    path = settings.keys_path / f"{ROOT_KEY}.key"
    if not path.exists():
        private_dir(settings.keys_path)
        write_key_pair(SigningKey.generate(), settings.keys_path / ROOT_KEY, passphrase_from_env())
    return path


def root_signing_key(settings: Settings) -> SigningKey | None:
    """The root key when it is kept here (development); None when it stays offline, as in production."""
    path = settings.keys_path / f"{ROOT_KEY}.key"
    return load_signing_key(path, passphrase_from_env()) if path.exists() else None


def active_record(storage: Storage) -> SigningKeyRecord:
    """Raises: NoSigningKey."""
    current = [k for k in storage.signing_keys() if k.retired_at is None]
    if not current:
        raise NoSigningKey("no signing key: run `suishenma-issuer init`")
    return current[-1]


@dataclass(frozen=True)
class ActiveKey:
    record: SigningKeyRecord
    key: SigningKey


def load_active_key(settings: Settings, storage: Storage) -> ActiveKey:
    """The newest non-retired signing key, loaded from its file.

    Raises:
        NoSigningKey: none recorded.
        KeyFileError: its file is missing, unreadable, or the passphrase is wrong.
    """
    rec = active_record(storage)
    return ActiveKey(rec, load_signing_key(settings.keys_path / rec.path, passphrase_from_env()))


def rotate(settings: Settings, storage: Storage, now: int, actor: str, alg: Alg = Alg.EdDSA) -> tuple[str, str]:
    """Add a new signing key and retire the current one; return (old kid, new kid).

    The retired key stays in the trust list until the last code it signed has expired.

    Raises:
        NoSigningKey: there is no key to rotate.
        KeyFileError: the new key file cannot be written.
    """
    old = active_record(storage)
    new = create_signing_key(settings, storage, now, actor, alg)
    storage.signing_key_retire(old.kid, now, actor)
    return old.kid, new


def trust_entries(settings: Settings, storage: Storage, now: int) -> list[IssuerEntry]:
    """Entries for every key a verifier still needs: current keys, and retired ones whose codes live on.

    Raises:
        KeyFileError: a public key file is missing or damaged.
    """
    uri = f"{settings.public_url.rstrip('/')}/v1/status-lists/{settings.issuer_id}"
    entries = []
    for rec in storage.signing_keys():
        if rec.retired_at is not None and rec.last_expiry < now:
            continue
        pub = load_verification_key(settings.keys_path / (Path(rec.path).stem + ".pub"))
        # a running server may sign with a retired key until it notices the rotation (seconds)
        until = rec.retired_at + SKEW if rec.retired_at is not None else rec.created_at + KEY_LIFETIME
        entries.append(IssuerEntry(pub, settings.issuer_id, rec.created_at - SKEW, until, status_uri=uri))
    return entries
