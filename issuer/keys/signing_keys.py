"""The issuer's signing keys on disk and their lifecycle: create, rotate, and which ones the trust list keeps.

Private keys live in ``keys/issuer-<kid>.key`` (0600, encrypted when ``SUISHENMA_KEY_PASSPHRASE`` is
set); the database records only kid, algorithm, file name and dates. Nothing here logs or returns key
material.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from issuer.errors import (
    THE_CURRENT_SIGNING_KEY,
    THE_ROOT_KEY,
    THE_SIGNING_KEY,
    KeysEncrypted,
    KeyUnusable,
    NoSigningKey,
    Problem,
)
from issuer.files import private_dir
from issuer.settings import DAY, Settings
from issuer.storage import SigningKeyRecord, Storage
from suishenma import (
    Alg,
    IssuerEntry,
    KeyFileError,
    SigningKey,
    load_verification_key,
    passphrase_from_env,
    write_key_pair,
)
from suishenma.keys import MAX_KEY_FILE
from suishenma.texts import Text

ROOT_KEY = "root"
# A current key is listed as valid this long after it was made; rotation shortens it to the retirement time.
KEY_LIFETIME = 5 * 365 * 86400
# Codes may carry an issue time this far before a key was created (clock skew between issuer nodes).
SKEW = 300


def keystore_encrypted(settings: Settings) -> bool:
    """True when a private key under keys/ is encrypted: new keys must then be encrypted too."""
    for path in sorted(settings.keys_path.glob("*.key")):
        try:
            with path.open("rb") as f:
                if b"ENCRYPTED" in f.readline(64):
                    return True
        except OSError:
            continue
    return False


def passphrase_for_new_keys(settings: Settings) -> bytes | None:
    """The passphrase (from ``SUISHENMA_KEY_PASSPHRASE``) that new private keys are written with.

    Raises:
        KeyFileError: the keys here are encrypted and the variable is not set: a key written now would be
            the only plaintext private key in the folder.
    """
    passphrase = passphrase_from_env()
    if passphrase is None and keystore_encrypted(settings):
        raise KeysEncrypted(settings.keys_path)
    return passphrase


def read_key_file(path: Path, what: Text) -> bytes:
    """The bytes of a private key file, checked to be one (PEM), without decrypting it.

    Raises:
        KeyUnusable: missing (``key_file_missing``), unreadable (``key_file_unreadable``), or too large or
            not a PEM private key (``key_file_damaged``).
    """
    try:
        with path.open("rb") as f:
            pem = f.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise KeyUnusable(Problem.KEY_FILE_MISSING, path, what) from None
    except OSError as exc:
        raise KeyUnusable(Problem.KEY_FILE_UNREADABLE, path, what, exc.strerror or type(exc).__name__) from None
    if len(pem) > MAX_KEY_FILE or b"PRIVATE KEY-----" not in pem:
        raise KeyUnusable(Problem.KEY_FILE_DAMAGED, path, what, "no PEM private key")
    return pem


def load_private_key(path: Path, passphrase: bytes | None, what: Text) -> SigningKey:
    """Load a private key; a failure says which ``issuer.errors.Problem`` it is.

    Raises:
        KeyUnusable: the file is missing, unreadable or damaged; it is encrypted and ``passphrase`` is None
            (``passphrase_missing``) or wrong (``passphrase_wrong``); it is not encrypted but a passphrase
            is set (``key_not_encrypted``).
    """
    pem = read_key_file(path, what)
    encrypted = b"ENCRYPTED" in pem
    if encrypted and passphrase is None:
        raise KeyUnusable(Problem.PASSPHRASE_MISSING, path, what)
    try:
        key = SigningKey.from_pem(pem, passphrase if encrypted else None)
    except KeyFileError as exc:
        cause = Problem.PASSPHRASE_WRONG if encrypted else Problem.KEY_FILE_DAMAGED
        raise KeyUnusable(cause, path, what, exc.detail) from None
    if not encrypted and passphrase is not None:  # a readable key, but not the protected one expected
        raise KeyUnusable(Problem.KEY_NOT_ENCRYPTED, path, what)
    return key


def create_signing_key(settings: Settings, storage: Storage, now: int, actor: str, alg: Alg = Alg.EdDSA) -> str:
    """Make a key pair under keys/, record it, and return its kid (hex).

    Raises:
        KeyFileError: the key file cannot be written (e.g. it exists), or the keys here are encrypted
            and no passphrase is set.
    """
    passphrase = passphrase_for_new_keys(settings)
    key = SigningKey.generate(alg)
    priv, pub = _write_new_key(settings, key, passphrase)
    try:
        storage.signing_key_add(key.kid.hex(), alg.name, priv.name, now, actor)
    except BaseException:
        _remove(priv, pub)
        raise
    return key.kid.hex()


def _write_new_key(settings: Settings, key: SigningKey, passphrase: bytes | None) -> tuple[Path, Path]:
    private_dir(settings.keys_path)
    return write_key_pair(key, settings.keys_path / f"issuer-{key.kid.hex()}", passphrase)


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def create_root_key(settings: Settings) -> Path:
    """Make the development root key pair once; return the private key's path.

    Raises:
        KeyFileError: the key file cannot be written, or the keys here are encrypted and no passphrase is set.
    """
    path = settings.keys_path / f"{ROOT_KEY}.key"
    if not path.exists():
        passphrase = passphrase_for_new_keys(settings)
        private_dir(settings.keys_path)
        write_key_pair(SigningKey.generate(), settings.keys_path / ROOT_KEY, passphrase)
    return path


def root_signing_key(settings: Settings) -> SigningKey | None:
    """The root key when it is kept here (development); None when it stays offline, as in production.

    Raises:
        KeyUnusable: it is here but cannot be opened (the message names the cause).
    """
    path = settings.keys_path / f"{ROOT_KEY}.key"
    return load_private_key(path, passphrase_from_env(), THE_ROOT_KEY) if path.exists() else None


def active_record(storage: Storage) -> SigningKeyRecord:
    """Raises: NoSigningKey."""
    current = [k for k in storage.signing_keys() if k.retired_at is None]
    if not current:
        raise NoSigningKey()
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
    return ActiveKey(rec, load_private_key(settings.keys_path / rec.path, passphrase_from_env(), THE_SIGNING_KEY))


def rotate(settings: Settings, storage: Storage, now: int, actor: str, alg: Alg | None = None) -> tuple[str, str]:
    """Add a new signing key and retire the current one; return (old kid, new kid).

    The new key has the current key's algorithm unless ``alg`` is given: an SM2 issuer stays SM2.

    The retired key stays in the trust list until the last code it signed has expired. Everything that
    can fail is checked before the first write (the current key opens with the passphrase, which must be
    set when the keys here are encrypted; the root key, when kept here, opens too; every public key the
    trust list names is readable), and the database records the new key and retires the old one in one
    transaction; if that fails, the new key files are removed. A failure leaves keys/ and the database
    as they were.

    Raises:
        NoSigningKey: there is no key to rotate.
        KeyFileError: a key cannot be opened (wrong or missing passphrase: the message names
            ``SUISHENMA_KEY_PASSPHRASE``), a public key is unreadable, or the new key cannot be written.
        Conflict: another rotation retired the current key meanwhile.
    """
    old = active_record(storage)
    passphrase = passphrase_for_new_keys(settings)
    load_private_key(settings.keys_path / old.path, passphrase, THE_CURRENT_SIGNING_KEY)
    root_signing_key(settings)
    trust_entries(settings, storage, now)
    alg = Alg[old.alg] if alg is None else alg
    key = SigningKey.generate(alg)
    priv, pub = _write_new_key(settings, key, passphrase)
    try:
        storage.signing_key_rotate(old.kid, key.kid.hex(), alg.name, priv.name, now, actor)
    except BaseException:
        _remove(priv, pub)
        raise
    return old.kid, key.kid.hex()


def trust_entries(settings: Settings, storage: Storage, now: int) -> list[IssuerEntry]:
    """Entries for every key a verifier still needs: current keys, and retired ones whose codes live on.

    Raises:
        KeyFileError: a public key file is missing or damaged.
    """
    uri = settings.status_list_uri
    entries = []
    for rec in storage.signing_keys():
        if rec.retired_at is not None and rec.last_expiry < now:
            continue
        pub = load_verification_key(settings.keys_path / (Path(rec.path).stem + ".pub"))
        # a running server may sign with a retired key until it notices the rotation (seconds); a phone's
        # credential is dated by its slot, up to a slot before it was signed and up to a day after
        until = rec.retired_at + SKEW if rec.retired_at is not None else rec.created_at + KEY_LIFETIME
        until += DAY
        entries.append(
            IssuerEntry(
                pub,
                settings.issuer_id,
                rec.created_at - SKEW - settings.slot,
                until,
                status_uri=uri,
                previous_forms_until=settings.previous_forms_until or None,
                slot=settings.slot,
                timestamp_uri=settings.timestamp_uri,
            )
        )
    return entries
