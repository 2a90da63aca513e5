"""EU Digital COVID Certificate (``HC1:``) verification: the same codec on a foreign profile.

An HC1 code is ``HC1:`` + Base45(zlib(COSE_Sign1(CWT))) with ES256 or PS256 signatures and the
certificate under claim -260/1 (eHealth Network, "Electronic Health Certificate Container Format"
§2–3). A DCC signer's kid is the first 8 bytes of SHA-256 over its DER certificate, and may sit in
the protected or the unprotected header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import _cbor, _cose, _text
from .errors import CodeClaimsError, CodeFormatError, CodeTimeError, KeyFileError, Reason
from .keys import VerificationKey
from .labels import DCC_HCERT_CLAIM, DCC_PREFIX, Alg, Claim

DCC_ALGS = (Alg.ES256, Alg.PS256)
MAX_DCC_CLAIMS_BYTES = 8 * 1024


@dataclass(frozen=True)
class DccResult:
    """A verified EU DCC: issuing country, times and the health certificate map."""

    country: str
    issued_at: int
    expires_at: int
    hcert: dict[Any, Any]
    kid: bytes


def dcc_kid(certificate_der: bytes) -> bytes:
    """DCC key id: first 8 bytes of SHA-256 over the DER certificate."""
    return hashlib.sha256(certificate_der).digest()[:8]


def dcc_signer(pem: bytes, kid: bytes | None = None) -> VerificationKey:
    """A DCC signer from a PEM certificate (kid derived) or public key (``kid`` required).

    Raises:
        KeyFileError: unreadable, unsupported, or a bare key without ``kid``.
    """
    if b"BEGIN CERTIFICATE" in pem:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise KeyFileError(Reason.KEY_FILE, f"bad certificate: {exc}") from None
        der = cert.public_bytes(serialization.Encoding.DER)
        return VerificationKey.from_pem(pem, kid=kid or dcc_kid(der))
    if kid is None:
        raise KeyFileError(Reason.KEY_FILE, "a bare public key needs the signer's kid")
    return VerificationKey.from_pem(pem, kid=kid)


def verify_dcc(text: str, signers: Mapping[bytes, VerificationKey], *, now: int, skew: int = 300) -> DccResult:
    """Verify an ``HC1:`` code at ``now`` against signers by kid.

    Raises:
        CodeFormatError, CodeSignatureError, CodeClaimsError, CodeTimeError: as ``codes.verify``;
            an algorithm other than ES256 or PS256 is ALG_MISMATCH.
    """
    message = _text.decode(text, DCC_PREFIX, require_zlib=True)
    msg = _cose.parse(message, allow_unprotected_kid=True)
    if msg.alg not in DCC_ALGS:
        raise CodeFormatError(Reason.ALG_MISMATCH, "EU DCC allows ES256 and PS256 only")
    _cose.verify(msg, signers)
    try:
        claims = _cbor.loads(msg.payload)
    except ValueError as exc:
        raise CodeFormatError(Reason.MALFORMED, f"claims: {exc}") from None
    if not isinstance(claims, dict):
        raise CodeFormatError(Reason.PAYLOAD_NOT_MAP)
    country, iat, exp = claims.get(Claim.ISS), claims.get(Claim.IAT), claims.get(Claim.EXP)
    container = claims.get(DCC_HCERT_CLAIM)
    if not isinstance(container, dict) or not isinstance(container.get(1), dict):
        raise CodeClaimsError(Reason.MISSING_CLAIM, "health certificate (-260/1)")
    if not (isinstance(iat, int) and isinstance(exp, int)):
        raise CodeClaimsError(Reason.MISSING_CLAIM, "iat and exp")
    if iat > now + skew:
        raise CodeTimeError(Reason.NOT_YET_VALID)
    if exp <= now - skew:
        raise CodeTimeError(Reason.EXPIRED)
    return DccResult(country if isinstance(country, str) else "", iat, exp, container[1], msg.kid)
