"""A phone's public key: read from a JWK (as WebCrypto exports it) or a COSE_Key (RFC 9052 §7),
written into a device credential's ``cnf`` claim (RFC 8747), and used to check presentations.

Ed25519, and P-256 because phones keep hardware-backed keys only on that curve (Secure Enclave,
Android keystores). A P-256 key travels compressed in a code (x and the sign of y, RFC 9053 §7.1.1)
to save 31 bytes. Checks are strict: a private parameter (``d``) is refused, never stored; a point
must be on its curve; unknown key types and curves are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .errors import CodeSignatureError, Reason, UsageError
from .keys import SigningKey, VerificationKey
from .labels import Alg, Crv, KeyParam, Kty

_COORD = 32  # bytes per coordinate for Ed25519 and P-256
MAX_JWK_FIELD = 128  # characters; a real x or y has 43
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class DeviceKey:
    """A device's public key (Ed25519 or P-256)."""

    public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    alg: Alg

    @classmethod
    def of(cls, key: VerificationKey | SigningKey) -> DeviceKey:
        """The device key of a key pair made with ``SigningKey.generate``.

        Raises:
            UsageError: not an Ed25519 or P-256 key.
        """
        public = key.public().public_key if isinstance(key, SigningKey) else key.public_key
        if isinstance(public, ed25519.Ed25519PublicKey):
            return cls(public, Alg.EdDSA)
        if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
            return cls(public, Alg.ES256)
        raise UsageError("device keys are Ed25519 or P-256")

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> DeviceKey:
        """Read a public JWK (RFC 8037 for Ed25519, RFC 7518 §6.2 for P-256).

        Raises:
            UsageError: a private key (``d``), an unknown key type or curve, a field of the wrong
                length or encoding, or a point that is not on the curve.
        """
        if not isinstance(jwk, Mapping):
            raise UsageError("the device key must be a JWK object")
        if "d" in jwk:
            raise UsageError("this JWK holds a private key: send the public key only, and make a new key pair")
        kty, crv = jwk.get("kty"), jwk.get("crv")
        if kty == "OKP" and crv == "Ed25519":
            return cls._ed25519(_b64(jwk, "x"))
        if kty == "EC" and crv == "P-256":
            return cls._p256(b"\x04" + _b64(jwk, "x") + _b64(jwk, "y"))
        raise UsageError(f"device keys are OKP/Ed25519 or EC/P-256, not {kty!s:.10}/{crv!s:.10}")

    @classmethod
    def from_cose(cls, m: Any) -> DeviceKey:
        """Read a COSE_Key map from a credential's ``cnf`` claim.

        Raises:
            UsageError: not a map, a private key, an unknown key type or curve, a coordinate of the
                wrong length or a point not on the curve.
        """
        if type(m) is not dict:
            raise UsageError("COSE_Key is not a map")
        if KeyParam.D in m:
            raise UsageError("COSE_Key holds a private key")
        kty, crv, x = m.get(KeyParam.KTY), m.get(KeyParam.CRV), m.get(KeyParam.X)
        if type(x) is not bytes or len(x) != _COORD:
            raise UsageError("COSE_Key x must be 32 bytes")
        if kty == Kty.OKP and crv == Crv.Ed25519:
            return cls._ed25519(x)
        if kty == Kty.EC2 and crv == Crv.P256:
            y = m.get(KeyParam.Y)
            if type(y) is bool:
                return cls._p256((b"\x03" if y else b"\x02") + x)
            if type(y) is bytes and len(y) == _COORD:
                return cls._p256(b"\x04" + x + y)
            raise UsageError("COSE_Key y must be 32 bytes or a sign bit")
        raise UsageError("COSE_Key must be OKP/Ed25519 or EC2/P-256")

    @classmethod
    def _ed25519(cls, raw: bytes) -> DeviceKey:
        if len(raw) != _COORD:
            raise UsageError("an Ed25519 key is 32 bytes")
        return cls(ed25519.Ed25519PublicKey.from_public_bytes(raw), Alg.EdDSA)

    @classmethod
    def _p256(cls, point: bytes) -> DeviceKey:
        if len(point) not in (1 + _COORD, 1 + 2 * _COORD):
            raise UsageError("a P-256 point has 32-byte coordinates")
        try:
            return cls(ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point), Alg.ES256)
        except ValueError:
            raise UsageError("the P-256 point is not on the curve") from None

    def to_cose(self) -> dict[int, Any]:
        """The compact COSE_Key written into ``cnf``: Ed25519 raw, P-256 compressed."""
        if isinstance(self.public_key, ed25519.Ed25519PublicKey):
            raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {int(KeyParam.KTY): int(Kty.OKP), int(KeyParam.CRV): int(Crv.Ed25519), int(KeyParam.X): raw}
        point = self.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        return {
            int(KeyParam.KTY): int(Kty.EC2),
            int(KeyParam.CRV): int(Crv.P256),
            int(KeyParam.X): point[1:],
            int(KeyParam.Y): point[0] == 3,
        }

    def to_jwk(self) -> dict[str, str]:
        """The public JWK, as WebCrypto's ``exportKey("jwk", ...)`` writes it."""
        if isinstance(self.public_key, ed25519.Ed25519PublicKey):
            raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": _b64encode(raw)}
        point = self.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"kty": "EC", "crv": "P-256", "x": _b64encode(point[1:33]), "y": _b64encode(point[33:])}

    def thumbprint(self) -> str:
        """RFC 7638 JWK thumbprint (SHA-256, base64url): the same key gives the same value in any form."""
        jwk = self.to_jwk()
        members = ",".join(f'"{name}":"{jwk[name]}"' for name in sorted(jwk))  # required members only
        return _b64encode(hashlib.sha256(("{" + members + "}").encode()).digest())

    def verify(self, data: bytes, signature: bytes) -> None:
        """Verify a COSE signature (Ed25519, or ES256 as raw r || s; RFC 9053 §2).

        Raises:
            CodeSignatureError: BAD_DEVICE_SIGNATURE.
        """
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, data)
                return
            if len(signature) != 2 * _COORD:
                raise InvalidSignature
            r, s = int.from_bytes(signature[:_COORD], "big"), int.from_bytes(signature[_COORD:], "big")
            self.public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            raise CodeSignatureError(Reason.BAD_DEVICE_SIGNATURE) from None


def _b64(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_JWK_FIELD:
        raise UsageError(f"JWK field {name!r} missing or too long")
    try:
        return b64url_decode(value)
    except ValueError:
        raise UsageError(f"JWK field {name!r} is not base64url") from None


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): Python's decoder skips stray characters.

    Raises:
        ValueError: a character outside the alphabet, or an impossible length.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
