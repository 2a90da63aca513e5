"""SM2 signatures with SM3 (GB/T 32918.2-2016, GM/T 0003.2-2012; curve of GB/T 32918.5-2017).

The arithmetic is done by gmalglib (C, chosen by measurement: docs/format.md §2.1), installed with
the ``sm2`` extra: ``pip install 'suishenma[sm2]'``. It is imported only when an SM2 signature is
made or checked, so everything else, including reading trust lists that name SM2 keys, works
without it; a missing library is reported as ``Reason.ALG_UNAVAILABLE``.

What this module checks itself, before the library is asked (Wycheproof-style, GB/T 32918.2 §7.1):
public keys are uncompressed points on the curve (never the point at infinity; the cofactor is 1),
signatures are exactly 64 bytes ``r || s`` (like ES256 in COSE, RFC 9053 §2.1) with r and s in
[1, n-1]. The signer's identity ID_A is always the standard default ``1234567812345678``
(GM/T 0009-2012 §10): a signature made under any other ID does not verify.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature

from . import _sm2_pkcs8
from .errors import CodeSignatureError, KeyFileError, Reason, SuishenmaError

# GB/T 32918.5-2017 §4: the recommended 256-bit curve y^2 = x^3 + ax + b over F_p.
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
DEFAULT_ID = b"1234567812345678"  # GM/T 0009-2012 §10
SIGNATURE_LENGTH = 64
INSTALL_HINT = "SM2 needs gmalglib: pip install 'suishenma[sm2]'"


def _backend(error: type[SuishenmaError]) -> Any:
    """The gmalglib SM2 class.

    Raises:
        ``error`` (a CodeSignatureError or KeyFileError): ALG_UNAVAILABLE when gmalglib is missing.
    """
    try:
        from gmalglib.sm2 import SM2
    except ImportError:
        raise error(Reason.ALG_UNAVAILABLE, INSTALL_HINT) from None
    return SM2


def on_curve(x: int, y: int) -> bool:
    """True when (x, y) is a finite point of the SM2 curve (GB/T 32918.1 §6.1.2 b, c)."""
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


class SM2PublicKey:
    """An SM2 public key: a validated point on the curve. Immutable."""

    __slots__ = ("_point", "_verifier")

    def __init__(self, point: bytes) -> None:
        """``point`` is 0x04 || x || y (SEC 1 §2.3.3, uncompressed).

        Raises:
            ValueError: not 65 bytes starting with 0x04, or not on the curve.
        """
        if len(point) != 65 or point[0] != 4:
            raise ValueError("an SM2 public key is an uncompressed point of 65 bytes")
        if not on_curve(int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")):
            raise ValueError("SM2 public key is not a point on the curve")
        self._point = bytes(point)
        self._verifier: Any = None

    @classmethod
    def from_spki(cls, der: bytes) -> SM2PublicKey | None:
        """The key of an SM2 SubjectPublicKeyInfo, or None when ``der`` names another algorithm.

        Raises:
            ValueError: malformed DER, or an SM2 key that is not a valid point.
        """
        point = _sm2_pkcs8.parse_spki(der)
        return None if point is None else cls(point)

    @property
    def point(self) -> bytes:
        """0x04 || x || y."""
        return self._point

    def spki(self) -> bytes:
        """SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7; id-ecPublicKey on the SM2 curve)."""
        return _sm2_pkcs8.spki(self._point)

    def pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM, as ``openssl pkey -pubout`` writes it."""
        return _sm2_pkcs8.to_pem("PUBLIC KEY", self.spki())

    def verify(self, signature: bytes, data: bytes) -> None:
        """Check an ``r || s`` signature over ``data`` with ID_A = DEFAULT_ID (GB/T 32918.2 §7).

        Raises:
            InvalidSignature: wrong length, r or s outside [1, n-1], or the equation does not hold.
            CodeSignatureError: ALG_UNAVAILABLE when gmalglib is not installed.
        """
        if len(signature) != SIGNATURE_LENGTH:
            raise InvalidSignature("an SM2 signature is 64 bytes r || s")
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (0 < r < N and 0 < s < N):
            raise InvalidSignature("r or s outside [1, n-1]")
        verifier = self._verifier
        if verifier is None:  # built once per key: a scan then costs one library call
            verifier = self._verifier = _backend(CodeSignatureError)(pk=self._point, uid=DEFAULT_ID)
        if not verifier.verify(data, signature):
            raise InvalidSignature("SM2 signature does not verify")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and other._point == self._point

    def __hash__(self) -> int:
        return hash(self._point)

    def __repr__(self) -> str:
        return f"SM2PublicKey({self._point[1:9].hex()}...)"


class SM2PrivateKey:
    """An SM2 private key (scalar d in [1, n-2], GB/T 32918.1 §6.1) with its public key."""

    __slots__ = ("_d", "_public", "_signer")

    def __init__(self, d: int, point: bytes | None = None) -> None:
        """Wrap the scalar ``d``; ``point`` (0x04 || x || y), when given, must be d·G.

        Raises:
            KeyFileError: KEY_FILE for a scalar out of range or a public key that is not d·G;
                ALG_UNAVAILABLE when gmalglib is not installed.
        """
        sm2 = _backend(KeyFileError)
        if not 1 <= d <= N - 2:
            raise KeyFileError(Reason.KEY_FILE, "SM2 private key out of range")
        sk = d.to_bytes(32, "big")
        derived = sm2.get_pk(sk)
        if point is not None and point != derived:
            raise KeyFileError(Reason.KEY_FILE, "SM2 public key in the file does not match the private key")
        self._d = d
        self._public = SM2PublicKey(derived)
        self._signer = sm2(sk, derived, DEFAULT_ID, rnd_fn=secrets.token_bytes)

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A new key from the operating system's random source.

        Raises:
            KeyFileError: ALG_UNAVAILABLE when gmalglib is not installed.
        """
        _backend(KeyFileError)
        return cls(secrets.randbelow(N - 2) + 1)

    def public_key(self) -> SM2PublicKey:
        return self._public

    def private_bytes_raw(self) -> bytes:
        """The 32-byte scalar (for test vectors only; key files are PKCS#8)."""
        return self._d.to_bytes(32, "big")

    def sign(self, data: bytes) -> bytes:
        """``r || s`` (64 bytes) over SM3(Z_A || data) with ID_A = DEFAULT_ID (GB/T 32918.2 §6.1)."""
        signature: bytes = self._signer.sign(data)
        return signature

    def pkcs8(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM; encrypted (PBES2, AES-256-CBC) when a passphrase is given."""
        info = _sm2_pkcs8.private_info(self._d, self._public.point)
        if passphrase:
            return _sm2_pkcs8.to_pem("ENCRYPTED PRIVATE KEY", _sm2_pkcs8.encrypt(info, passphrase))
        return _sm2_pkcs8.to_pem("PRIVATE KEY", info)

    @classmethod
    def from_pem(cls, pem: bytes, passphrase: bytes | None) -> SM2PrivateKey | None:
        """Read an SM2 PKCS#8 PEM (plain or encrypted); None when it holds another kind of key.

        Raises:
            KeyFileError: KEY_FILE for a malformed file, a wrong or missing passphrase, or a key
                whose parts do not match; ALG_UNAVAILABLE when gmalglib is not installed.
        """
        try:
            label, der = _sm2_pkcs8.from_pem(pem)
            if label == "ENCRYPTED PRIVATE KEY":
                if passphrase is None:
                    raise KeyFileError(Reason.KEY_FILE, "key is encrypted: set SUISHENMA_KEY_PASSPHRASE")
                der = _sm2_pkcs8.decrypt(der, passphrase)
            elif label != "PRIVATE KEY":
                return None
            elif passphrase is not None:
                raise KeyFileError(Reason.KEY_FILE, "key is not encrypted")
            parsed = _sm2_pkcs8.parse_private_info(der)
        except ValueError:
            raise KeyFileError(Reason.KEY_FILE, "not a PEM private key, or wrong passphrase") from None
        return None if parsed is None else cls(*parsed)

    def __repr__(self) -> str:  # never print key material
        return "SM2PrivateKey(...)"
