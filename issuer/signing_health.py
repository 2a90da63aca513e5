"""Whether this issuer can sign: checked in full before ``serve`` starts, and cheaply on every ``/healthz``.

An issuer that cannot sign must not say it is healthy. At start-up the signing key (and the root key,
when it is kept here) is opened with the passphrase, exactly as minting will; while serving, ``/healthz``
checks that the current key is still loadable by the service and that its file is still there and
readable, so a removed or damaged key file is reported before the next restart fails. A key in a PKCS#11
token (an HSM) is checked by signing with it: a removed token or a refused PIN is reported the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from issuer.errors import (
    CATALOGUE,
    THE_SIGNING_KEY,
    KeyUnusable,
    NoSigningKey,
    NotInitialised,
    Problem,
    StorageUnavailable,
)
from issuer.keys.pkcs11_uri import is_token_uri
from issuer.keys.sealing import data_key_path
from issuer.keys.signing_keys import (
    active_record,
    load_private_key,
    open_signing_key,
    read_key_file,
    root_signing_key,
)
from issuer.service import IssuerService
from issuer.settings import Settings
from issuer.storage import Storage
from suishenma import passphrase_from_env

log = logging.getLogger(__name__)

Unable = KeyUnusable | NotInitialised
_PROBE = b"suishenma healthz"


def require_initialised(settings: Settings) -> None:
    """Raises: NotInitialised: there is no database here (opening one would create it empty), or, with
    PostgreSQL, ``init`` never made the data key here."""
    if settings.database_url:
        if not data_key_path(settings.keys_path).is_file():
            raise NotInitialised(settings.base_dir.resolve())
    elif not settings.db_path.is_file():
        raise NotInitialised(settings.base_dir.resolve())


def check_can_sign(settings: Settings, storage: Storage) -> None:
    """Open the current signing key, and the root key when it is kept here, as minting and signing will.

    Raises:
        NotInitialised: no signing key is recorded (``init`` was not run, or failed).
        KeyUnusable: a key file is missing, unreadable or damaged, or the passphrase is missing or wrong; the
            token of a token key, its PIN or the key in it cannot be used.
    """
    try:
        record = active_record(storage)
    except NoSigningKey:
        raise NotInitialised(settings.base_dir.resolve()) from None
    open_signing_key(settings, record.path, passphrase_from_env(), THE_SIGNING_KEY)
    root_signing_key(settings)


@dataclass(frozen=True)
class Health:
    ok: bool
    cause: Problem | None = None
    message_zh: str = ""
    message_en: str = ""

    def body(self) -> dict[str, object]:
        if self.ok:
            return {"ok": True}
        return {"ok": False, "reason": self.cause, "message_zh": self.message_zh, "message_en": self.message_en}


class SigningHealth:
    """The running service's answer to "can you sign?", logged when it changes."""

    def __init__(self, service: IssuerService) -> None:
        self.service = service
        self._last: Health | None = None
        self._verified: tuple[object, ...] = ()  # the key file's stat when it last opened to the current key

    def _check_key_file(self) -> None:
        """The current key's file is there, readable, and still opens to that key. One ``stat`` per call
        while the file is unchanged (``/healthz`` stays as cheap as a bare endpoint); read and opened again
        when its inode, size, time or mode changed.

        Raises:
            NotInitialised, KeyUnusable.
        """
        active = self.service.key  # cached; loads the new key after a rotation
        if is_token_uri(active.record.path):
            # A token key is checked by using it: one signature (about 0.15 ms with SoftHSM2) says that the
            # token is there, logged in, and holds the key; nothing cheaper says all three.
            active.key.cose_key.sign(_PROBE)
            return
        path = self.service.settings.keys_path / active.record.path
        what = THE_SIGNING_KEY
        try:
            st = path.stat()
        except FileNotFoundError:
            raise KeyUnusable(Problem.KEY_FILE_MISSING, path, what) from None
        except OSError as exc:
            raise KeyUnusable(Problem.KEY_FILE_UNREADABLE, path, what, exc.strerror or type(exc).__name__) from None
        seen = (active.record.kid, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
        if seen == self._verified:
            return
        read_key_file(path, what)
        key = load_private_key(path, passphrase_from_env(), what)
        if key.kid.hex() != active.record.kid:
            raise KeyUnusable(Problem.KEY_FILE_DAMAGED, path, what, f"it holds key {key.kid.hex()}")
        self._verified = seen

    def check(self) -> Health:
        """Never raises: a failure is the answer."""
        try:
            self._check_key_file()
            health = Health(True)
        except (KeyUnusable, NotInitialised) as exc:
            health = Health(False, exc.problem, exc.public_zh, exc.public_en)
            if self._last is None or self._last.cause != health.cause:
                log.error("cannot sign: %s", exc.message_en)
        except StorageUnavailable as exc:
            zh, en = CATALOGUE[Problem.CANNOT_SIGN_DATABASE_DOWN]
            health = Health(False, Problem.DATABASE_UNAVAILABLE, zh, en)
            if self._last is None or self._last.cause != health.cause:
                log.error("cannot sign: %s", exc)
        except Exception as exc:  # e.g. the database cannot be read: still not healthy, and said why
            zh, en = CATALOGUE[Problem.CANNOT_SIGN]
            health = Health(False, Problem.UNAVAILABLE, zh, en)
            if self._last is None or self._last.ok:
                log.error("cannot sign: %s: %s", type(exc).__name__, exc)
        if health.ok and self._last is not None and not self._last.ok:
            log.info("signing works again")
        self._last = health
        return health
