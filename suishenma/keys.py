"""Signing and verification keys, key ids and PEM files (DESIGN §2, keys/README.md).

Ed25519 is the default for our issuers; ES256 (P-256) is supported for HSM-held keys; SM2 (with SM3,
``sm2.py``) for issuers bound to the national algorithms; PS256 keys and X.509 certificates are
accepted for verifying foreign profiles. A key id (``kid``) is the first four bytes of SHA-256 over
the DER SubjectPublicKeyInfo: short, because it is in every code.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cwt import COSEKey
from cwt.exceptions import VerifyError

from ._sm2_pkcs8 import from_pem as _pem_block
from .errors import CodeSignatureError, KeyFileError, Reason, UsageError
from .labels import Alg
from .sm2 import SM2PrivateKey, SM2PublicKey

KID_LENGTH = 4
PASSPHRASE_ENV = "SUISHENMA_KEY_PASSPHRASE"
SIGNING_ALGS = (Alg.EdDSA, Alg.ES256, Alg.SM2)
MAX_KEY_FILE = 64 * 1024

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey | SM2PublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | SM2PrivateKey


class CoseKey(Protocol):
    """What the COSE layer asks of a key: python-cwt's key objects, or ``_SM2CoseKey``."""

    def sign(self, msg: bytes) -> bytes: ...

    def verify(self, msg: bytes, sig: bytes) -> None: ...


class _SM2CoseKey:
    """SM2 behind the interface of python-cwt's keys (which know no SM2): raw r || s signatures."""

    def __init__(self, key: SM2PublicKey | SM2PrivateKey) -> None:
        self._key = key

    def sign(self, msg: bytes) -> bytes:
        if not isinstance(self._key, SM2PrivateKey):
            raise UsageError("a public key cannot sign")
        return self._key.sign(msg)

    def verify(self, msg: bytes, sig: bytes) -> None:
        public = self._key if isinstance(self._key, SM2PublicKey) else self._key.public_key()
        public.verify(sig, msg)


def spki_der(public_key: PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key (RFC 5280 §4.1)."""
    if isinstance(public_key, SM2PublicKey):
        return public_key.spki()
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def derive_kid(public_key: PublicKey) -> bytes:
    """First ``KID_LENGTH`` bytes of SHA-256 over the SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(public_key)).digest()[:KID_LENGTH]


def _alg_for(public_key: PublicKey, alg: Alg | None) -> Alg:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        expected = Alg.EdDSA
    elif isinstance(public_key, SM2PublicKey):
        expected = Alg.SM2
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise KeyFileError(Reason.KEY_FILE, f"unsupported curve {public_key.curve.name}")
        expected = Alg.ES256
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise KeyFileError(Reason.KEY_FILE, "RSA keys below 2048 bits are not accepted")
        expected = Alg.PS256
    else:
        raise KeyFileError(Reason.KEY_FILE, f"unsupported key type {type(public_key).__name__}")
    # RFC 9864 §2.2: Ed25519 (-19) names the same algorithm as EdDSA (-8) on an Ed25519 key.
    if alg is not None and alg != expected and not (alg == Alg.Ed25519 and expected == Alg.EdDSA):
        raise KeyFileError(Reason.KEY_FILE, f"key is {expected.name}, not {Alg(alg).name}")
    return expected


def _cose_key(key: Any, alg: Alg, kid: bytes) -> CoseKey:
    if isinstance(key, SM2PublicKey | SM2PrivateKey):
        return _SM2CoseKey(key)
    pem = (
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        if not hasattr(key, "private_bytes")
        else key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return COSEKey.from_pem(pem, alg=alg.name, kid=kid)


@dataclass(frozen=True)
class VerificationKey:
    """A public key with its algorithm and key id, ready for COSE verification."""

    public_key: PublicKey
    alg: Alg
    kid: bytes
    _cose: CoseKey = field(repr=False, compare=False)

    @classmethod
    def from_public_key(
        cls, public_key: PublicKey, alg: Alg | None = None, kid: bytes | None = None
    ) -> VerificationKey:
        """Wrap a ``cryptography`` public key; ``kid`` defaults to ``derive_kid``.

        Raises:
            KeyFileError: unsupported key type or curve, or ``alg`` does not fit the key.
        """
        alg = _alg_for(public_key, alg)
        kid = derive_kid(public_key) if kid is None else kid
        return cls(public_key, alg, kid, _cose_key(public_key, alg, kid))

    @classmethod
    def from_der(cls, der: bytes, alg: Alg | None = None, kid: bytes | None = None) -> VerificationKey:
        """Load a DER SubjectPublicKeyInfo.

        Raises:
            KeyFileError: not a public key, or an unsupported one.
        """
        public_key: Any
        try:
            public_key = SM2PublicKey.from_spki(der) or serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(Reason.KEY_FILE, f"not a DER public key: {exc}") from None
        return cls.from_public_key(public_key, alg, kid)

    @classmethod
    def from_pem(cls, pem: bytes, alg: Alg | None = None, kid: bytes | None = None) -> VerificationKey:
        """Load a PEM public key or X.509 certificate (the certificate's key is used).

        Raises:
            KeyFileError: neither a public key nor a certificate, or an unsupported key.
        """
        public_key: Any
        try:
            if b"BEGIN CERTIFICATE" in pem:
                public_key = x509.load_pem_x509_certificate(pem).public_key()
            else:
                label, der = _pem_block(pem)
                if label != "PUBLIC KEY":
                    raise ValueError(f"a {label}, not a PUBLIC KEY")
                public_key = SM2PublicKey.from_spki(der) or serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(Reason.KEY_FILE, f"not a PEM public key or certificate: {exc}") from None
        return cls.from_public_key(public_key, alg, kid)

    @property
    def cose_key(self) -> CoseKey:
        """The python-cwt key object used by the COSE layer."""
        return self._cose

    @property
    def der(self) -> bytes:
        """DER SubjectPublicKeyInfo."""
        return spki_der(self.public_key)

    def pem(self) -> bytes:
        """PEM SubjectPublicKeyInfo."""
        if isinstance(self.public_key, SM2PublicKey):
            return self.public_key.pem()
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def verify_signature(self, data: bytes, signature: bytes) -> None:
        """Verify a raw COSE signature over ``data`` with the key python-cwt uses (RFC 9053 §2).

        Raises:
            CodeSignatureError: BAD_SIGNATURE.
        """
        try:
            self._cose.verify(data, signature)
        except (VerifyError, InvalidSignature, ValueError) as exc:
            raise CodeSignatureError(Reason.BAD_SIGNATURE) from exc


@dataclass(frozen=True)
class SigningKey:
    """A private key of one of ``SIGNING_ALGS`` with its key id."""

    private_key: PrivateKey
    alg: Alg
    kid: bytes
    _cose: CoseKey = field(repr=False, compare=False)

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey(alg={self.alg.name}, kid={self.kid.hex()})"

    @classmethod
    def generate(cls, alg: Alg = Alg.EdDSA) -> SigningKey:
        """Make a new key.

        Raises:
            UsageError: ``alg`` is not a signing algorithm of ours.
            KeyFileError: ALG_UNAVAILABLE for SM2 when its library is not installed.
        """
        if alg == Alg.EdDSA:
            return cls.from_private_key(ed25519.Ed25519PrivateKey.generate())
        if alg == Alg.ES256:
            return cls.from_private_key(ec.generate_private_key(ec.SECP256R1()))
        if alg == Alg.SM2:
            return cls.from_private_key(SM2PrivateKey.generate())
        raise UsageError(f"cannot sign with {Alg(alg).name}; use EdDSA, ES256 or SM2")

    @classmethod
    def from_private_key(cls, private_key: PrivateKey) -> SigningKey:
        """Wrap a ``cryptography`` private key.

        Raises:
            KeyFileError: not an Ed25519, P-256 or SM2 key.
        """
        if not isinstance(private_key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | SM2PrivateKey):
            raise KeyFileError(Reason.KEY_FILE, "signing keys must be Ed25519, P-256 or SM2")
        public = private_key.public_key()
        alg = _alg_for(public, None)
        kid = derive_kid(public)
        return cls(private_key, alg, kid, _cose_key(private_key, alg, kid))

    @classmethod
    def from_pem(cls, pem: bytes, passphrase: bytes | None = None) -> SigningKey:
        """Load a PKCS#8 PEM private key, encrypted or not.

        Raises:
            KeyFileError: not a private key, wrong or missing passphrase, unsupported type;
                ALG_UNAVAILABLE for an SM2 key when its library is not installed.
        """
        private_key: Any
        try:
            private_key = serialization.load_pem_private_key(pem, password=passphrase)
        except TypeError:
            detail = "key is encrypted: set " + PASSPHRASE_ENV if passphrase is None else "key is not encrypted"
            raise KeyFileError(Reason.KEY_FILE, detail) from None
        except ValueError:
            raise KeyFileError(Reason.KEY_FILE, "not a PEM private key, or wrong passphrase") from None
        except UnsupportedAlgorithm:  # pyca/cryptography knows no SM2 curve
            private_key = SM2PrivateKey.from_pem(pem, passphrase)
            if private_key is None:
                raise KeyFileError(Reason.KEY_FILE, "unsupported private key type") from None
        return cls.from_private_key(private_key)

    @property
    def cose_key(self) -> CoseKey:
        """The python-cwt key object used by the COSE layer."""
        return self._cose

    def public(self) -> VerificationKey:
        """The matching verification key."""
        return VerificationKey.from_public_key(self.private_key.public_key(), self.alg, self.kid)

    def pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with ``passphrase`` when given."""
        if isinstance(self.private_key, SM2PrivateKey):
            return self.private_key.pkcs8(passphrase)
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def passphrase_from_env(env: dict[str, str] | None = None) -> bytes | None:
    """The key passphrase from ``SUISHENMA_KEY_PASSPHRASE`` (never from argv), or None."""
    value = (os.environ if env is None else env).get(PASSPHRASE_ENV)
    return value.encode() if value else None


def _read_capped(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyFileError(Reason.KEY_FILE, f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise KeyFileError(Reason.KEY_FILE, f"{path} is larger than any key file")
    return data


def write_key_pair(key: SigningKey, base: Path | str, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Write ``BASE.key`` (mode 0600, encrypted when a passphrase is given) and ``BASE.pub``.

    The private key is created with mode 0600 before any byte is written, and an existing file is
    never overwritten.

    Raises:
        KeyFileError: a file already exists or cannot be written.
    """
    base = Path(base)
    priv, pub = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.pem(passphrase))
            f.flush()
            os.fsync(f.fileno())
        pub.write_bytes(key.public().pem())
    except FileExistsError:
        raise KeyFileError(Reason.KEY_FILE, f"{priv} exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeyFileError(Reason.KEY_FILE, f"cannot write {base}: {exc.strerror}") from None
    return priv, pub


def load_signing_key(path: Path | str, passphrase: bytes | None = None) -> SigningKey:
    """Read a private key file; ``passphrase`` defaults to the environment variable.

    Raises:
        KeyFileError: unreadable, too large, wrong passphrase or unsupported.
    """
    pem = _read_capped(Path(path))
    return SigningKey.from_pem(pem, passphrase if passphrase is not None else passphrase_from_env())


def load_verification_key(path: Path | str) -> VerificationKey:
    """Read a PEM public key or certificate file.

    Raises:
        KeyFileError: unreadable, too large or unsupported.
    """
    return VerificationKey.from_pem(_read_capped(Path(path)))
