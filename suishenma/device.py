"""Device-bound codes (docs/format.md §4.2): a phone makes its own 60-second codes, offline.

The issuer signs a *device credential* once a day: a COSE_Sign1 over CWT claims whose ``cnf`` claim
(RFC 8747) holds the phone's public key and whose private claim carries a status-list index. At every
refresh the phone makes a *presentation* of it: the same COSE_Sign1 with two unprotected header
parameters added, the presentation time as CWT claims (RFC 9597, label 15: ``{6: iat}``) and the
device's abbreviated countersignature (RFC 9338 Countersignature0 version 2, label 12) over the
credential and that time, with the time bound as external AAD. Nothing else changes, so the issuer's
signature still verifies, and the algorithm of the countersignature is the one the ``cnf`` key implies.
"""

from __future__ import annotations

import base64
from typing import Any

from . import _cbor, _cose, _text
from .claims import (
    DEFAULT_SKEW,
    DYNAMIC_TTL,
    Claims,
    VerifiedCode,
    check_form,
    check_key_limits,
    credential_device_key,
    decode_claims,
    signed_digest,
)
from .device_key import DeviceKey, b64url_decode
from .errors import CodeClaimsError, CodeFormatError, CodeTimeError, Reason, UsageError
from .keyring import KeyRing
from .keys import SigningKey
from .labels import COUNTERSIGN0_CONTEXT, DEVICE_PREFIX, Claim, CodeType, Header

# A credential is one COSE_Sign1 of about 170 bytes (with identity fields, about 200).
MAX_CREDENTIAL_BYTES = 1024
_CONTEXT = _cbor.dumps(COUNTERSIGN0_CONTEXT)
_PRESENTATION_HEADERS = {int(Header.COUNTERSIGNATURE0), int(Header.CWT_CLAIMS)}
_IAT = int(Claim.IAT)


def mint_credential(claims: Claims, key: SigningKey) -> bytes:
    """Sign a device credential (``Claims.device``) with an issuer key.

    Raises:
        UsageError: the claims are not a device credential's, or out of range.
    """
    if claims.checked().code_type is not CodeType.DEVICE:
        raise UsageError("a device credential needs Claims.device(...)")
    return _cose.sign(_cbor.dumps(claims.to_cbor_map()), key)


def credential_text(credential: bytes) -> str:
    """The credential as base64url (no padding), for JSON and files."""
    return base64.urlsafe_b64encode(credential).rstrip(b"=").decode()


def read_credential(text: str) -> bytes:
    """Inverse of ``credential_text``.

    Raises:
        UsageError: too long, or not base64url.
    """
    text = text.strip()
    if len(text) > MAX_CREDENTIAL_BYTES * 4 // 3 + 4:
        raise UsageError("credential text too long")
    try:
        return b64url_decode(text)
    except ValueError:
        raise UsageError("credential is not base64url text") from None


def countersign_structure(protected: bytes, external_aad: bytes, payload: bytes, signature: bytes) -> bytes:
    """Countersign_structure for a Countersignature0 v2 on a COSE_Sign1 (RFC 9338 §3.3):
    ["CounterSignature0V2", body_protected, external_aad, payload, [signature]]."""
    return b"".join(
        (
            b"\x85",
            _CONTEXT,
            _cose.bstr_header(len(protected)),
            protected,
            _cose.bstr_header(len(external_aad)),
            external_aad,
            _cose.bstr_header(len(payload)),
            payload,
            b"\x81",
            _cose.bstr_header(len(signature)),
            signature,
        )
    )


def present(credential: bytes, device: SigningKey, *, now: int) -> str:
    """The phone's side: a code made from ``credential`` at instant ``now``, signed by ``device``.

    Raises:
        UsageError: not a device credential, or ``device`` is not the key it is bound to.
    """
    try:
        msg = _cose.parse(credential)
        bound = credential_device_key(decode_claims(msg.payload))
    except (CodeFormatError, CodeClaimsError, ValueError) as exc:
        raise UsageError(f"not a device credential: {exc}") from None
    if msg.unprotected:
        raise UsageError("not a device credential: its unprotected header is not empty")
    if bound != DeviceKey.of(device):
        raise UsageError("this credential is bound to another device key")
    time_claims = {_IAT: now}
    aad = _time_claims(now)
    signature = device.cose_key.sign(countersign_structure(msg.protected_bytes, aad, msg.payload, msg.signature))
    unprotected = {int(Header.COUNTERSIGNATURE0): signature, int(Header.CWT_CLAIMS): time_claims}
    message = _cose.assemble(msg.protected_bytes, _cbor.dumps(unprotected), msg.payload, msg.signature)
    return _text.encode(message, DEVICE_PREFIX)


def verify_presentation(text: str, keyring: KeyRing, *, now: int, skew: int = DEFAULT_SKEW) -> VerifiedCode:
    """Verify a device-bound code at ``now``: the issuer's signature on the credential, the device's
    countersignature on credential and time, the key's trust-list limits, and the times.

    Raises:
        CodeFormatError: size, prefix, encoding, COSE structure, or presentation headers.
        CodeSignatureError: UNKNOWN_KID, ALG_MISMATCH, BAD_SIGNATURE (issuer), BAD_DEVICE_SIGNATURE.
        CodeClaimsError: missing or mistyped claims, not a device credential, an unusable cnf key,
            or limits of the issuer key (ISSUER_MISMATCH, TYPE_NOT_ALLOWED, KEY_NOT_VALID, PREVIOUS_FORM).
        CodeTimeError: NOT_YET_VALID, CREDENTIAL_EXPIRED, or EXPIRED (the presentation is older
            than DYNAMIC_TTL).
    """
    msg = _cose.parse(_text.decode(text, DEVICE_PREFIX))
    countersignature, presented_at = _presentation_headers(msg.unprotected)
    key = _cose.verify(msg, keyring.keys_by_kid)
    trusted = keyring[msg.kid]
    claims = Claims.from_cbor_map(decode_claims(msg.payload), trusted.issuer, trusted.slot)
    if claims.device_key is None:
        raise CodeClaimsError(Reason.BAD_CLAIM, "not a device credential")
    check_key_limits(claims, trusted)
    check_form(claims, trusted, now)
    aad = _time_claims(presented_at)
    structure = countersign_structure(msg.protected_bytes, aad, msg.payload, msg.signature)
    claims.device_key.verify(structure, countersignature)
    _check_times(claims, presented_at, now, skew)
    digest = signed_digest(msg.protected_bytes, msg.payload, aad)
    credential = signed_digest(msg.protected_bytes, msg.payload)  # the same for every presentation of it
    return VerifiedCode(claims, msg.kid, key.alg, trusted, digest, presented_at, credential)


def _time_claims(presented_at: int) -> bytes:
    """The external AAD: the presentation time as the CWT claims map ``{6: t}``, shortest form
    (RFC 8949 §4.2.1), written directly because it is on every device-bound scan."""
    if presented_at < 24:
        return bytes((0xA1, 0x06, presented_at))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if presented_at < 1 << (8 * size):
            return bytes((0xA1, 0x06, info)) + presented_at.to_bytes(size, "big")
    raise UsageError("presentation time out of range")


def _presentation_headers(unprotected: dict[Any, Any]) -> tuple[bytes, int]:
    """The countersignature and presentation time, and nothing else, from the unprotected header.

    Raises:
        CodeFormatError: MALFORMED.
    """
    if set(unprotected) != _PRESENTATION_HEADERS:
        raise CodeFormatError(Reason.MALFORMED, "a presentation carries exactly a countersignature and a time")
    signature, time_claims = unprotected[int(Header.COUNTERSIGNATURE0)], unprotected[int(Header.CWT_CLAIMS)]
    if type(signature) is not bytes or not 0 < len(signature) <= 132:
        raise CodeFormatError(Reason.MALFORMED, "countersignature must be a byte string")
    if type(time_claims) is not dict or set(time_claims) != {_IAT} or type(time_claims[_IAT]) is not int:
        raise CodeFormatError(Reason.MALFORMED, "presentation time must be {6: uint}")
    presented_at = time_claims[_IAT]
    if not 0 <= presented_at < 2**63:
        raise CodeFormatError(Reason.MALFORMED, "presentation time out of range")
    return signature, presented_at


def _check_times(claims: Claims, presented_at: int, now: int, skew: int) -> None:
    """Raises: CodeTimeError (NOT_YET_VALID, CREDENTIAL_EXPIRED, EXPIRED)."""
    if claims.issued_at > now + skew:
        raise CodeTimeError(Reason.NOT_YET_VALID, f"credential issued {claims.issued_at - now} s in the future")
    if presented_at > now + skew:
        raise CodeTimeError(Reason.NOT_YET_VALID, f"presented {presented_at - now} s in the future: check the clocks")
    if presented_at < claims.issued_at - skew:
        raise CodeTimeError(Reason.NOT_YET_VALID, "presented before its credential was issued: check the phone's clock")
    if claims.expires_at <= now - skew or presented_at >= claims.expires_at + skew:
        raise CodeTimeError(Reason.CREDENTIAL_EXPIRED, f"credential expired {now - claims.expires_at} s ago")
    if presented_at + DYNAMIC_TTL <= now - skew:
        raise CodeTimeError(Reason.EXPIRED, f"presented {now - presented_at} s ago")
