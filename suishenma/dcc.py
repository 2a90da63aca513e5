"""EU Digital COVID Certificate (``HC1:``) verification, following the DCC verifiers (docs/format.md §7).

An HC1 code is ``HC1:`` + Base45(zlib(COSE_Sign1(CWT))) with the certificate under claim -260/1
(eHealth Network, "Electronic Health Certificate Container Format", hcert spec 1.0.x §3–4). Where that
specification leaves room, this profile accepts what the member states' reference verifiers accept
(hcert-kotlin, the DGCA verifier apps and the dgc-testdata cases CO1–CO23) and nothing more:

- the COSE_Sign1 may be tagged 18, untagged, or tagged 18 inside the CWT tag 61;
- the algorithm and the kid may each sit in the protected or the unprotected header, the protected one
  winning when both do; several signers may share a kid, and each is tried;
- ES256 (P-256) and PS256 (RSA, 2048 bits or more) only, the algorithm matching the signer's key;
- ``iss`` is optional, ``iat`` and ``exp`` are required NumericDates (integers or floats), and the
  payload may carry floats and tag-0 date-time strings;
- times: not before ``iat``, not after ``exp``, and inside the signer certificate's validity period;
  everything about the health content (test age, vaccination dates, recovery windows) is left to the
  business rules of the country that checks.

Our own ``SM1:`` format shares none of these allowances.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import _cbor, _cose, _text
from .errors import CodeClaimsError, CodeFormatError, CodeSignatureError, CodeTimeError, KeyFileError, Reason
from .keys import VerificationKey
from .labels import CWT_TAG, DCC_EU_V1, DCC_HCERT_CLAIM, DCC_PREFIX, Alg, Claim

DCC_ALGS = (Alg.ES256, Alg.PS256)
MAX_DCC_CLAIMS_BYTES = 8 * 1024
DEFAULT_DCC_SKEW = 300
_SIGN1_TAG = b"\xd2"  # tag 18 (RFC 9052 §2)
_CWT_TAG = bytes((0xD8, CWT_TAG))  # tag 61 (RFC 8392 §6), one-byte argument
_ARRAY_OF_4 = b"\x84"  # an untagged COSE_Sign1 starts with its array of 4


@dataclass(frozen=True)
class DccSigner:
    """A Document Signer: its key and, when it came as a certificate, the certificate's validity period."""

    key: VerificationKey
    not_before: int | None = None
    not_after: int | None = None

    @property
    def kid(self) -> bytes:
        """The DCC kid this signer is looked up by."""
        return self.key.kid


Signer = VerificationKey | DccSigner


@dataclass(frozen=True)
class DccResult:
    """A verified EU DCC: issuing country ("" when the optional ``iss`` is absent), times and the certificate."""

    country: str
    issued_at: int
    expires_at: int
    hcert: dict[Any, Any]
    kid: bytes


def dcc_kid(certificate_der: bytes) -> bytes:
    """DCC key id: first 8 bytes of SHA-256 over the DER certificate."""
    return hashlib.sha256(certificate_der).digest()[:8]


def dcc_signer(pem: bytes, kid: bytes | None = None) -> DccSigner:
    """A DCC signer from a PEM certificate (kid and validity taken from it) or public key (``kid`` required).

    Raises:
        KeyFileError: unreadable, unsupported (not P-256 or RSA of 2048 bits or more), or a bare key
            without ``kid``.
    """
    if b"BEGIN CERTIFICATE" in pem:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise KeyFileError(Reason.KEY_FILE, f"bad certificate: {exc}") from None
        der = cert.public_bytes(serialization.Encoding.DER)
        return DccSigner(
            VerificationKey.from_pem(pem, kid=kid or dcc_kid(der)),
            int(cert.not_valid_before_utc.timestamp()),
            int(cert.not_valid_after_utc.timestamp()),
        )
    if kid is None:
        raise KeyFileError(Reason.KEY_FILE, "a bare public key needs the signer's kid")
    return DccSigner(VerificationKey.from_pem(pem, kid=kid))


def verify_dcc(
    text: str,
    signers: Mapping[bytes, Signer | Sequence[Signer]],
    *,
    now: int,
    skew: int = DEFAULT_DCC_SKEW,
) -> DccResult:
    """Verify an ``HC1:`` code at ``now`` against signers by kid (several signers may share one kid).

    Raises:
        CodeFormatError: WRONG_PREFIX, BAD_ENCODING, BAD_COMPRESSION (zlib is mandatory), UNTAGGED (an outer
            tag other than 18, or 61 wrapping 18), MALFORMED, PAYLOAD_NOT_MAP, TOO_LARGE.
        CodeSignatureError: ALG_MISMATCH (not ES256 or PS256, or not the signer's key type), UNKNOWN_KID,
            BAD_SIGNATURE (no signer with that kid verifies).
        CodeClaimsError: MISSING_CLAIM (iat, exp or the certificate), BAD_CLAIM (mistyped claims),
            KEY_NOT_VALID (issued before or expiring after the signer certificate's validity).
        CodeTimeError: NOT_YET_VALID, EXPIRED.
    """
    message = _text.decode(text, DCC_PREFIX, require_zlib=True)
    msg = _cose.parse(_as_tagged_sign1(message), dcc_headers=True)
    if msg.alg not in DCC_ALGS:
        raise CodeSignatureError(Reason.ALG_MISMATCH, f"EU DCC allows ES256 and PS256 only, not {msg.alg}")
    signer = _verify_with_any(msg, signers)
    try:
        claims = _cbor.loads(msg.payload, max_bytes=MAX_DCC_CLAIMS_BYTES, dcc=True)
    except ValueError as exc:
        raise CodeFormatError(Reason.MALFORMED, f"claims: {exc}") from None
    if not isinstance(claims, dict):
        raise CodeFormatError(Reason.PAYLOAD_NOT_MAP)
    country = claims.get(Claim.ISS, "")
    if not isinstance(country, str):
        raise CodeClaimsError(Reason.BAD_CLAIM, "iss must be a text string")
    iat, exp = _numeric_date(claims, Claim.IAT, "iat"), _numeric_date(claims, Claim.EXP, "exp")
    hcert = _health_certificate(claims)
    if signer.not_before is not None and iat < signer.not_before:
        raise CodeClaimsError(Reason.KEY_NOT_VALID, "issued before the signer certificate's validity")
    if signer.not_after is not None and exp > signer.not_after:
        raise CodeClaimsError(Reason.KEY_NOT_VALID, "expires after the signer certificate's validity")
    if iat > now + skew:
        raise CodeTimeError(Reason.NOT_YET_VALID, f"issued {iat - now:.0f} s in the future")
    if exp <= now - skew:
        raise CodeTimeError(Reason.EXPIRED, f"expired {now - exp:.0f} s ago")
    return DccResult(country, math.floor(iat), math.floor(exp), hcert, msg.kid)


def _as_tagged_sign1(message: bytes) -> bytes:
    """The COSE_Sign1 with its tag 18, whether it came tagged, untagged or inside the CWT tag.

    hcert-kotlin (``CoseAdapter.augmentedInput``) and the DGCA iOS core (``CBOR.unwrap``) accept these
    three forms; the tag is not signed, so adding it changes nothing that was signed.

    Raises:
        CodeFormatError: UNTAGGED when the CWT tag wraps anything but a tagged COSE_Sign1.
    """
    if message.startswith(_CWT_TAG):
        inner = message[len(_CWT_TAG) :]
        if not inner.startswith(_SIGN1_TAG):
            raise CodeFormatError(Reason.UNTAGGED, "the CWT tag must wrap a COSE_Sign1 tagged 18")
        return inner
    if message[:1] == _ARRAY_OF_4:
        return _SIGN1_TAG + message
    return message


def _verify_with_any(msg: _cose.Sign1, signers: Mapping[bytes, Signer | Sequence[Signer]]) -> DccSigner:
    """The first signer with the message's kid whose key verifies it (hcert spec §3.3.3: a shortened
    kid may collide, so every signer with that kid is tried).

    Raises:
        CodeSignatureError: UNKNOWN_KID; ALG_MISMATCH when no signer's key fits the algorithm;
            BAD_SIGNATURE when some did and none verified.
    """
    found = signers.get(msg.kid)
    if found is None:
        raise CodeSignatureError(Reason.UNKNOWN_KID, f"kid {msg.kid.hex()}")
    candidates = [found] if isinstance(found, VerificationKey | DccSigner) else list(found)
    failures: list[CodeSignatureError] = []
    for candidate in candidates:
        signer = candidate if isinstance(candidate, DccSigner) else DccSigner(candidate)
        try:
            _cose.verify(msg, {msg.kid: signer.key})
        except CodeSignatureError as exc:
            failures.append(exc)
            continue
        return signer
    if not failures:
        raise CodeSignatureError(Reason.UNKNOWN_KID, f"kid {msg.kid.hex()}")
    raise next((f for f in failures if f.reason is Reason.BAD_SIGNATURE), failures[0])


def _numeric_date(claims: Mapping[Any, Any], label: int, name: str) -> float:
    """A required NumericDate (RFC 8392 §2): an integer or a finite float.

    Raises:
        CodeClaimsError: MISSING_CLAIM when absent, BAD_CLAIM when not a number.
    """
    value = claims.get(label)
    if value is None:
        raise CodeClaimsError(Reason.MISSING_CLAIM, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodeClaimsError(Reason.BAD_CLAIM, f"{name} must be a NumericDate")
    return float(value)


def _health_certificate(claims: Mapping[Any, Any]) -> dict[Any, Any]:
    """The EU DCC v1 map under claim -260, key 1 (hcert spec §3.3.7).

    Raises:
        CodeClaimsError: MISSING_CLAIM when absent, BAD_CLAIM when not maps.
    """
    container = claims.get(DCC_HCERT_CLAIM)
    if container is None:
        raise CodeClaimsError(Reason.MISSING_CLAIM, "health certificate (-260)")
    if not isinstance(container, dict):
        raise CodeClaimsError(Reason.BAD_CLAIM, "claim -260 must be a map")
    hcert = container.get(DCC_EU_V1)
    if hcert is None:
        raise CodeClaimsError(Reason.MISSING_CLAIM, "EU DCC v1 (-260/1)")
    if not isinstance(hcert, dict):
        raise CodeClaimsError(Reason.BAD_CLAIM, "the EU DCC v1 must be a map")
    return hcert
