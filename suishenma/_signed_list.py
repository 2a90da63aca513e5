"""Shared parsing of signed list tokens (trust lists, status lists): COSE_Sign1 over a CWT."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _cbor, _cose
from .errors import CodeError, ListError, Reason
from .keys import VerificationKey
from .labels import Header


def open_signed(
    data: bytes, keys: Mapping[bytes, VerificationKey], typ: str, *, max_items: int
) -> tuple[dict[Any, Any], VerificationKey]:
    """Verify a list token and return its claims map and the key that signed it.

    Raises:
        ListError: LIST_MALFORMED (structure, typ header, CBOR caps) or LIST_WRONG_SIGNER
            (unknown kid, algorithm mismatch, bad signature).
    """
    try:
        msg = _cose.parse(data)
    except CodeError as exc:
        raise ListError(Reason.LIST_MALFORMED, exc.detail or exc.reason.value) from None
    try:
        key = _cose.verify(msg, keys)
    except CodeError as exc:
        raise ListError(Reason.LIST_WRONG_SIGNER, exc.detail or exc.reason.value) from None
    if msg.protected.get(Header.TYP) != typ:
        raise ListError(Reason.LIST_MALFORMED, f"typ header must be {typ!r}")
    try:
        claims = _cbor.loads(msg.payload, max_items=max_items)
    except ValueError as exc:
        raise ListError(Reason.LIST_MALFORMED, str(exc)) from None
    if not isinstance(claims, dict):
        raise ListError(Reason.LIST_MALFORMED, "claims are not a map")
    return claims, key


def get(m: Mapping[Any, Any], key: Any, typ: type | tuple[type, ...], *, required: bool = True) -> Any:
    """A typed field of a list; ``bool`` never passes for ``int``.

    Raises:
        ListError: LIST_MALFORMED when missing or mistyped.
    """
    value = m.get(key)
    if value is None:
        if required:
            raise ListError(Reason.LIST_MALFORMED, f"field {key!r} missing")
        return None
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
        raise ListError(Reason.LIST_MALFORMED, f"field {key!r} has the wrong type")
    return value
