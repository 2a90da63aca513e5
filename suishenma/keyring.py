"""Trusted keys and what each may sign: the input of every verification."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .errors import UsageError
from .keys import VerificationKey
from .labels import CodeType

ALL_CODE_TYPES = frozenset(CodeType)


@dataclass(frozen=True)
class TrustedKey:
    """A verification key and its limits; ``None`` means unconstrained."""

    key: VerificationKey
    issuer: str | None = None
    valid_from: int | None = None
    valid_until: int | None = None
    code_types: frozenset[CodeType] = ALL_CODE_TYPES
    status_uri: str | None = None
    # Last instant a dynamic code or device credential of the previous forms (which carry exp, and with
    # it identifiers that never change) is accepted; None: the issuer has not switched, all are accepted.
    previous_forms_until: int | None = None
    slot: int | None = None  # seconds a current-form device credential is valid (its exp is implied)

    @property
    def kid(self) -> bytes:
        return self.key.kid


class KeyRing(Mapping[bytes, TrustedKey]):
    """Trusted keys by kid. Build it once and reuse it: lookups are a dict access.

    Raises (constructor):
        UsageError: two keys share a kid (one would shadow the other).
    """

    def __init__(self, entries: Iterable[TrustedKey]) -> None:
        self._by_kid: dict[bytes, TrustedKey] = {}
        for entry in entries:
            if entry.kid in self._by_kid:
                raise UsageError(f"duplicate kid {entry.kid.hex()}")
            self._by_kid[entry.kid] = entry
        self.keys_by_kid: dict[bytes, VerificationKey] = {k: e.key for k, e in self._by_kid.items()}

    @classmethod
    def of(cls, *keys: VerificationKey, issuer: str | None = None) -> KeyRing:
        """Keys constrained by nothing but ``issuer`` (any issuer when None): any code type, any time (for
        `verify --key`). A code that leaves iss out is the key's issuer's, so it needs ``issuer``."""
        return cls(TrustedKey(k, issuer) for k in keys)

    def __getitem__(self, kid: bytes) -> TrustedKey:
        return self._by_kid[kid]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._by_kid)

    def __len__(self) -> int:
        return len(self._by_kid)
