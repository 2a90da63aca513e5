"""Minting and verifying Suishenma codes, format v1 (DESIGN §2, docs/format.md §3).

A code is ``SM1:`` + Base45(COSE_Sign1(CWT claims)); a device-bound code is ``SMD1:`` + Base45 of a
device credential presented by its phone (``device.py``). ``verify`` takes either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _cbor, _cose, _text
from .claims import (
    DEFAULT_SKEW,
    Claims,
    VerifiedCode,
    check_form,
    check_key_limits,
    decode_claims,
    signed_digest,
)
from .device import verify_presentation
from .errors import CodeClaimsError, CodeFormatError, CodeTimeError, Reason
from .keyring import KeyRing
from .keys import SigningKey
from .labels import CODE_PREFIX, DEVICE_PREFIX, Claim, CodeType, Header
from .trustlist import MAX_SLOT


def mint(claims: Claims, key: SigningKey) -> str:
    """Sign ``claims`` and return the QR text (docs/format.md §3).

    Raises:
        UsageError: a claim out of range.
    """
    payload = _cbor.dumps(claims.checked().to_cbor_map())
    return _text.encode(_cose.sign(payload, key), CODE_PREFIX)


def verify(text: str, keyring: KeyRing, *, now: int, skew: int = DEFAULT_SKEW) -> VerifiedCode:
    """Decode, verify and time-check a code at instant ``now`` (POSIX seconds).

    ``skew`` seconds of clock difference are tolerated in both directions.

    A text starting ``SMD1:`` is a device-bound code: see ``device.verify_presentation``, which adds
    BAD_DEVICE_SIGNATURE and CREDENTIAL_EXPIRED to the reasons below.

    Raises:
        CodeFormatError: size, prefix, Base45, zlib, CBOR or COSE structure (RFC 9052 §4.2).
        CodeSignatureError: unknown kid, algorithm mismatch, bad signature (RFC 9052 §4.4).
        CodeClaimsError: missing or mistyped claims; issuer, code type or key validity not allowed
            by the trusted key; PREVIOUS_FORM after the window the key's entry states.
        CodeTimeError: EXPIRED or NOT_YET_VALID.
    """
    if text.startswith(DEVICE_PREFIX):
        return verify_presentation(text, keyring, now=now, skew=skew)
    msg = _cose.parse(_text.decode(text, CODE_PREFIX))
    key = _cose.verify(msg, keyring.keys_by_kid)
    trusted = keyring[msg.kid]
    claims = Claims.from_cbor_map(decode_claims(msg.payload), trusted.issuer, trusted.slot)
    if claims.code_type is CodeType.DEVICE:  # a credential alone proves nothing: its phone must sign
        raise CodeClaimsError(Reason.BAD_CLAIM, "a device credential is valid only as its phone's presentation")
    check_key_limits(claims, trusted)
    check_form(claims, trusted, now)
    if claims.issued_at > now + skew:
        raise CodeTimeError(Reason.NOT_YET_VALID, f"issued {claims.issued_at - now} s in the future")
    if claims.expires_at <= now - skew:
        raise CodeTimeError(Reason.EXPIRED, f"expired {now - claims.expires_at} s ago")
    return VerifiedCode(claims, msg.kid, key.alg, trusted, signed_digest(msg.protected_bytes, msg.payload))


@dataclass(frozen=True)
class Inspection:
    """What ``inspect`` shows. NOTHING in it has been verified. A current-form device credential's expiry is
    stated by its key's trust-list entry, which ``inspect`` does not know: ``claims.expires_at`` assumes the
    longest slot there is (6 hours)."""

    verified: bool
    alg: int
    kid: bytes
    compressed: bool
    message_bytes: int
    claims: Any
    presented_at: int | None = None  # device-bound codes: the time the phone says it signed


def inspect(text: str) -> Inspection:
    """Decode a code WITHOUT verifying its signature or times, for debugging only.

    A device credential names no issuer (its key does): its claims show the issuer as ``?``.

    Raises:
        CodeFormatError: the code cannot be decoded at all.
    """
    prefix = DEVICE_PREFIX if text.startswith(DEVICE_PREFIX) else CODE_PREFIX
    message = _text.decode(text, prefix)
    msg = _cose.parse(message)
    try:
        m = decode_claims(msg.payload)
        claims: Any = Claims.from_cbor_map(m, "?", MAX_SLOT)
    except (ValueError, CodeClaimsError, CodeFormatError):
        claims = None
    time_claims = msg.unprotected.get(int(Header.CWT_CLAIMS))
    presented = time_claims.get(int(Claim.IAT)) if isinstance(time_claims, dict) else None
    compressed = len(text) - len(prefix) != (len(message) * 3 + 1) // 2
    return Inspection(
        False, msg.alg, msg.kid, compressed, len(message), claims, presented if type(presented) is int else None
    )
