"""PKCS#11 modules, tokens and logged-in sessions, one of each per process, kept alive across token failures.

A module (``SUISHENMA_PKCS11_MODULE``, default SoftHSM2's) is loaded once per process. Each token gets one
read-write session, logged in as the user with the PIN, shared by every key in it: PKCS#11 logs a token in
for the whole application, and one session under one lock is also what makes a session safe to share
between the server's threads. When a token fails (removed, a network HSM unreachable), the session is
dropped and the next use looks for the token again; a token that is not found makes the module
re-initialise (``C_Finalize``/``C_Initialize``, at most once every ``REINIT_INTERVAL_S``), because modules
such as SoftHSM2 only see a returned or new token after that.

A PIN that a token refused is remembered (as a digest) and not tried again until the PIN changes: every
``/healthz`` and every mint would otherwise try it, and a real token locks after a few wrong PINs. No PIN
reaches a log, an exception or a URI.

Raises ``issuer.errors.KeyUnusable`` throughout, with a ``token_*`` or ``pin_*`` problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from issuer.errors import MODULE_ENV, PIN_ENV, KeyUnusable, Problem
from issuer.keys.pkcs11_uri import TokenKeyRef
from suishenma.texts import Text

# Debian's softhsm2 package; other systems set SUISHENMA_PKCS11_MODULE (e.g. a vendor's libCryptoki2.so).
DEFAULT_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
MAX_PIN_FILE = 256
# A missing token makes the module re-initialise at most this often (each one drops every session).
REINIT_INTERVAL_S = 1.0


def module_path(ref: TokenKeyRef, env: dict[str, str] | None = None) -> str:
    """The module for ``ref``: its ``module-path``, else ``SUISHENMA_PKCS11_MODULE``, else SoftHSM2's."""
    if ref.module_path:
        return ref.module_path
    value = (os.environ if env is None else env).get(MODULE_ENV)
    if value:
        return value
    return next((p for p in DEFAULT_MODULES if Path(p).is_file()), DEFAULT_MODULES[0])


def read_pin(ref: TokenKeyRef, what: Text, env: dict[str, str] | None = None) -> str:
    """The user PIN: the ``pin-source`` file when the URI names one (its first line), else ``SUISHENMA_PKCS11_PIN``.

    Raises:
        KeyUnusable: PIN_MISSING, neither is set, or the file cannot be read (the message never holds the PIN).
    """
    where = Path(ref.display)
    if ref.pin_source is not None:
        try:
            with open(ref.pin_source, "rb") as f:
                data = f.read(MAX_PIN_FILE + 1)
        except OSError as exc:
            raise KeyUnusable(
                Problem.PIN_MISSING, where, what, f"pin-source {ref.pin_source}: {exc.strerror or type(exc).__name__}"
            ) from None
        line = data.split(b"\n", 1)[0].rstrip(b"\r")
        try:
            pin = line.decode()
        except UnicodeDecodeError:
            pin = ""
        if len(data) > MAX_PIN_FILE or not pin:
            raise KeyUnusable(Problem.PIN_MISSING, where, what, f"pin-source {ref.pin_source} holds no UTF-8 PIN")
        return pin
    value = (os.environ if env is None else env).get(PIN_ENV)
    if not value:
        raise KeyUnusable(Problem.PIN_MISSING, where, what, f"{PIN_ENV} is not set")
    return value


def token_error(exc: Exception, ref: TokenKeyRef, what: Text) -> KeyUnusable:
    """The ``KeyUnusable`` a PKCS#11 error means. Only the error's class name is kept: a module's own text
    is not known to be free of secrets."""
    import pkcs11.exceptions as e

    where = Path(ref.display)
    name = type(exc).__name__
    if isinstance(exc, e.PinIncorrect | e.PinInvalid | e.PinLenRange):
        return KeyUnusable(Problem.PIN_WRONG, where, what)
    if isinstance(exc, e.PinLocked | e.PinExpired):
        return KeyUnusable(Problem.PIN_LOCKED, where, what)
    if isinstance(exc, e.NoSuchKey):
        return KeyUnusable(Problem.TOKEN_KEY_MISSING, where, what)
    if isinstance(exc, e.MultipleObjectsReturned):
        return KeyUnusable(Problem.TOKEN_KEY_UNUSABLE, where, what, "several objects match: add id= to the URI")
    if isinstance(exc, e.MechanismInvalid | e.KeyTypeInconsistent | e.FunctionNotSupported):
        return KeyUnusable(Problem.TOKEN_KEY_UNUSABLE, where, what, name)
    if isinstance(exc, _LOST):
        return KeyUnusable(Problem.TOKEN_MISSING, where, what)
    return KeyUnusable(Problem.TOKEN_FAILED, where, what, name)


def _lost_errors() -> tuple[type[Exception], ...]:
    """The errors after which a session or handle is gone and the token must be found again."""
    try:
        import pkcs11.exceptions as e
    except ImportError:
        return ()
    return (
        e.NoSuchToken,
        e.TokenNotPresent,
        e.TokenNotRecognised,
        e.DeviceRemoved,
        e.DeviceError,
        e.GeneralError,
        e.SessionClosed,
        e.SessionHandleInvalid,
        e.ObjectHandleInvalid,
        e.KeyHandleInvalid,
        e.SlotIDInvalid,
        e.UserNotLoggedIn,
    )


_LOST = _lost_errors()


class TokenModule:
    """One loaded PKCS#11 module: its sessions (one per token) and the lock that serialises their use."""

    def __init__(self, path: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.generation = 0  # grows whenever every session and object handle became invalid
        self._monotonic = monotonic
        self._lib: Any = None
        self._pid = os.getpid()
        self._sessions: dict[tuple[tuple[str, str], ...], Any] = {}
        self._refused: dict[tuple[tuple[str, str], ...], bytes] = {}
        self._last_reinit = -float("inf")

    def _load(self, ref: TokenKeyRef, what: Text) -> Any:
        """Raises: KeyUnusable: TOKEN_MODULE_MISSING (the library or its module cannot be loaded)."""
        if self._lib is not None and self._pid != os.getpid():  # a forked child must initialise afresh
            self._reinitialise()
        if self._lib is None:
            try:
                import pkcs11
            except ImportError:
                raise KeyUnusable(
                    Problem.TOKEN_MODULE_MISSING, Path(self.path), what, "python-pkcs11 is not installed: the hsm extra"
                ) from None
            if not Path(self.path).is_file():
                raise KeyUnusable(Problem.TOKEN_MODULE_MISSING, Path(self.path), what, "no such file")
            try:
                self._lib = pkcs11.lib(self.path)
            except Exception as exc:  # a library that is not a PKCS#11 module, or fails to initialise
                raise KeyUnusable(Problem.TOKEN_MODULE_MISSING, Path(self.path), what, type(exc).__name__) from None
            self._pid = os.getpid()
        return self._lib

    def _reinitialise(self) -> None:
        self._sessions.clear()  # their handles died with the module's state
        self.generation += 1
        self._last_reinit = self._monotonic()
        self._pid = os.getpid()
        with contextlib.suppress(Exception):  # the next look-up for the token reports what is wrong
            self._lib.reinitialize()

    def _find_token(self, lib: Any, ref: TokenKeyRef) -> Any:
        wanted = ref.token_attrs()
        found = []
        for slot in lib.get_slots(token_present=True):
            try:
                token = slot.get_token()
                have = {
                    "token": token.label,
                    "serial": token.serial.decode(errors="replace").strip(),
                    "manufacturer": token.manufacturer_id,
                    "model": token.model,
                }
            except Exception:  # a slot whose token is going away: not this one
                continue
            if all(have[k] == v for k, v in wanted.items()):
                found.append(token)
        return found

    def session(self, ref: TokenKeyRef, what: Text) -> Any:
        """The logged-in read-write session of ``ref``'s token; call with ``lock`` held.

        Raises:
            KeyUnusable: TOKEN_MODULE_MISSING, TOKEN_MISSING, TOKEN_KEY_UNUSABLE (two tokens match),
                PIN_MISSING, PIN_WRONG (now, or before with the same PIN), PIN_LOCKED, TOKEN_FAILED.
        """
        import pkcs11.exceptions as e

        lib = self._load(ref, what)
        key = tuple(sorted(ref.token_attrs().items()))
        held = self._sessions.get(key)
        if held is not None:
            return held
        pin = read_pin(ref, what)
        digest = hashlib.sha256(b"suishenma pin\0" + pin.encode()).digest()
        if self._refused.get(key) == digest:
            raise KeyUnusable(Problem.PIN_WRONG, Path(ref.display), what)
        try:
            tokens = self._find_token(lib, ref)
            if not tokens and self._monotonic() - self._last_reinit >= REINIT_INTERVAL_S:
                self._reinitialise()
                tokens = self._find_token(lib, ref)
            if not tokens:
                raise KeyUnusable(Problem.TOKEN_MISSING, Path(ref.display), what)
            if len(tokens) > 1:
                raise KeyUnusable(
                    Problem.TOKEN_KEY_UNUSABLE, Path(ref.display), what, "several tokens match: add serial= to the URI"
                )
            try:
                session = tokens[0].open(rw=True, user_pin=pin)
            except e.UserAlreadyLoggedIn:  # logged in by a session of this process that is still open
                session = tokens[0].open(rw=True)
        except (e.PinIncorrect, e.PinInvalid, e.PinLenRange) as exc:
            self._refused[key] = digest
            raise token_error(exc, ref, what) from None
        except e.PKCS11Error as exc:
            raise token_error(exc, ref, what) from None
        self._refused.pop(key, None)
        self._sessions[key] = session
        return session

    def forget(self, ref: TokenKeyRef) -> None:
        """Drop ``ref``'s token session after a failure, so that the next use finds the token again; call with
        ``lock`` held."""
        session = self._sessions.pop(tuple(sorted(ref.token_attrs().items())), None)
        self.generation += 1
        if session is not None:
            with contextlib.suppress(Exception):  # it is gone already
                session.close()

    @contextmanager
    def using(self, ref: TokenKeyRef, what: Text) -> Iterator[Any]:
        """``with module.using(ref, what) as session:`` under the lock; a PKCS#11 error inside becomes a
        ``KeyUnusable``, and one that means the session is gone drops it first.

        Raises:
            KeyUnusable: as ``session``, or what the error inside means (``token_error``).
        """
        import pkcs11.exceptions as e

        with self.lock:
            session = self.session(ref, what)
            try:
                yield session
            except e.PKCS11Error as exc:
                if isinstance(exc, _LOST):
                    self.forget(ref)
                raise token_error(exc, ref, what) from None


_modules: dict[str, TokenModule] = {}
_modules_lock = threading.Lock()


def module_for(ref: TokenKeyRef) -> TokenModule:
    """The process's ``TokenModule`` for ``ref``'s module (made on first use; nothing is loaded yet)."""
    path = module_path(ref)
    with _modules_lock:
        module = _modules.get(path)
        if module is None:
            module = _modules[path] = TokenModule(path)
        return module
