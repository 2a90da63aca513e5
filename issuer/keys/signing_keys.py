"""The issuer's signing keys and their lifecycle: create, rotate, and which ones the trust list keeps.

Private keys live in ``keys/issuer-<kid>.key`` (0600, encrypted when ``SUISHENMA_KEY_PASSPHRASE`` is
set), or in a PKCS#11 token (an HSM, ``pkcs11_keys``); the database records only kid, algorithm, the file
name or the key's ``pkcs11:`` URI (RFC 7512, never with a PIN), and dates. The public key is in
``keys/issuer-<kid>.pub`` either way. Nothing here logs or returns key material.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from issuer.errors import (
    THE_CURRENT_SIGNING_KEY,
    THE_ROOT_KEY,
    THE_SIGNING_KEY,
    InputError,
    KeysEncrypted,
    KeyUnusable,
    NoSigningKey,
    Problem,
)
from issuer.files import private_dir
from issuer.keys.pkcs11_uri import TokenKeyRef, UriError, is_token_uri, parse_uri
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
from suishenma.errors import Reason
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


def open_signing_key(settings: Settings, where: str, passphrase: bytes | None, what: Text) -> SigningKey:
    """The private key a signing-key record names: a file under keys/, or a ``pkcs11:`` URI (a token key).

    Raises:
        KeyUnusable: as ``load_private_key`` for a file; for a token key, the module, token, PIN or key cannot
            be used (``pkcs11_tokens``: ``token_*``, ``pin_*``).
    """
    if not is_token_uri(where):
        return load_private_key(settings.keys_path / where, passphrase, what)
    from issuer.keys.pkcs11_keys import open_token_key

    try:
        ref = parse_uri(where)
    except UriError as exc:
        raise KeyUnusable(Problem.TOKEN_KEY_UNUSABLE, Path(where.partition("?")[0]), what, str(exc)) from None
    return open_token_key(ref, what)


def token_ref(text: str) -> TokenKeyRef:
    """A ``pkcs11:`` URI given by an operator.

    Raises:
        InputError: TOKEN_URI_INVALID (the message names why; a URI never holds a PIN).
    """
    try:
        return parse_uri(text)
    except UriError as exc:
        raise InputError(Problem.TOKEN_URI_INVALID, uri=text.partition("?")[0][:200], why=str(exc)) from None


def use_token_key(token: TokenKeyRef, alg: Alg, what: Text = THE_SIGNING_KEY) -> tuple[TokenKeyRef, SigningKey]:
    """The token key ``token`` names, made in the token with ``alg`` when it is not there yet (a key made
    outside, with ``pkcs11-tool`` or a vendor's tool, is used as it is, whatever ``alg`` says).

    Raises:
        KeyUnusable: the token cannot be used, or the key is not P-256 or Ed25519 (``pkcs11_keys``).
        UsageError: the key must be made and ``alg`` is neither ES256 nor EdDSA.
    """
    from issuer.keys.pkcs11_keys import generate_token_key, open_token_key

    try:
        return token, open_token_key(token, what)
    except KeyUnusable as exc:
        if exc.problem is not Problem.TOKEN_KEY_MISSING:
            raise
    return generate_token_key(token, alg, what)


def public_key_file(settings: Settings, record: SigningKeyRecord) -> Path:
    """``keys/issuer-<kid>.pub`` for a token key; the ``.pub`` beside the private key file otherwise."""
    if is_token_uri(record.path):
        return settings.keys_path / f"issuer-{record.kid}.pub"
    return settings.keys_path / (Path(record.path).stem + ".pub")


def _write_public(settings: Settings, key: SigningKey) -> Path:
    """Export a token key's public half to ``keys/issuer-<kid>.pub`` (the trust list reads it from there).

    Raises:
        KeyFileError: it cannot be written, or a different key is there under that name.
    """
    private_dir(settings.keys_path)
    path = settings.keys_path / f"issuer-{key.kid.hex()}.pub"
    pem = key.public().pem()
    try:
        if path.exists() and path.read_bytes() != pem:
            raise KeyFileError(Reason.KEY_FILE, f"{path} holds another public key; refusing to overwrite it")
        path.write_bytes(pem)
    except OSError as exc:
        raise KeyFileError(Reason.KEY_FILE, f"cannot write {path}: {exc.strerror}") from None
    return path


def create_signing_key(
    settings: Settings,
    storage: Storage,
    now: int,
    actor: str,
    alg: Alg = Alg.EdDSA,
    token: TokenKeyRef | None = None,
) -> str:
    """Make a key pair under keys/ (or use or make the token key ``token`` names), record it, and return its
    kid (hex).

    Raises:
        KeyFileError: the key file cannot be written (e.g. it exists), or the keys here are encrypted
            and no passphrase is set.
        KeyUnusable: the token key cannot be used (``use_token_key``).
    """
    if token is not None:
        ref, key = use_token_key(token, alg)
        pub = _write_public(settings, key)
        try:
            storage.signing_key_add(key.kid.hex(), key.alg.name, ref.uri, now, actor)
        except BaseException:
            _remove(pub)
            raise
        return key.kid.hex()
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
        KeyFileError: its file is missing, unreadable, or the passphrase is wrong; its token cannot be used.
    """
    rec = active_record(storage)
    return ActiveKey(rec, open_signing_key(settings, rec.path, passphrase_from_env(), THE_SIGNING_KEY))


def rotate(
    settings: Settings,
    storage: Storage,
    now: int,
    actor: str,
    alg: Alg | None = None,
    token: TokenKeyRef | None = None,
) -> tuple[str, str]:
    """Add a new signing key and retire the current one; return (old kid, new kid).

    The new key has the current key's algorithm unless ``alg`` is given: an SM2 issuer stays SM2. With
    ``token`` the new key is that token key (made there when missing); a current key in a token is never
    replaced by a key file unasked.

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
        KeyUnusable: a token key cannot be used.
        InputError: TOKEN_KEY_NOT_ROTATED (the current key is in a token and ``token`` is None), or
            ``token`` names the current key.
        Conflict: another rotation retired the current key meanwhile.
    """
    old = active_record(storage)
    if token is None and is_token_uri(old.path):
        raise InputError(Problem.TOKEN_KEY_NOT_ROTATED)
    passphrase = passphrase_for_new_keys(settings) if token is None else passphrase_from_env()
    open_signing_key(settings, old.path, passphrase, THE_CURRENT_SIGNING_KEY)
    root_signing_key(settings)
    trust_entries(settings, storage, now)
    alg = Alg[old.alg] if alg is None else alg
    if token is not None:
        return old.kid, _rotate_to_token(settings, storage, old, token, alg, now, actor)
    key = SigningKey.generate(alg)
    priv, pub = _write_new_key(settings, key, passphrase)
    try:
        storage.signing_key_rotate(old.kid, key.kid.hex(), alg.name, priv.name, now, actor)
    except BaseException:
        _remove(priv, pub)
        raise
    return old.kid, key.kid.hex()


def _rotate_to_token(
    settings: Settings, storage: Storage, old: SigningKeyRecord, token: TokenKeyRef, alg: Alg, now: int, actor: str
) -> str:
    """Raises: KeyUnusable, KeyFileError, InputError (the token key is the current key), Conflict."""
    ref, key = use_token_key(token, alg)
    if key.kid.hex() == old.kid:
        raise InputError(Problem.TOKEN_KEY_NOT_ROTATED)
    pub = _write_public(settings, key)
    try:
        storage.signing_key_rotate(old.kid, key.kid.hex(), key.alg.name, ref.uri, now, actor)
    except BaseException:
        _remove(pub)
        raise
    return key.kid.hex()


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
        pub = load_verification_key(public_key_file(settings, rec))
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
