"""SM2 key files: SubjectPublicKeyInfo, PKCS#8 and encrypted PKCS#8 in PEM, as OpenSSL 3 writes them.

- Public key: SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) with algorithm id-ecPublicKey and the SM2
  curve as its named-curve parameter (GB/T 35276 / GM/T 0010), key 0x04 || x || y.
- Private key: PKCS#8 PrivateKeyInfo (RFC 5208 §5) with the same algorithm, holding an RFC 5915
  ECPrivateKey with the public key.
- Encrypted at rest exactly like the Ed25519 and P-256 files that pyca/cryptography writes: PKCS#8
  EncryptedPrivateKeyInfo with PBES2 (RFC 8018 §6.2), PBKDF2-HMAC-SHA256 (16-byte salt, 2048
  iterations) and AES-256-CBC. ``openssl pkey`` reads these files, and we read OpenSSL's.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from . import _der
from ._der import BIT_STRING, INTEGER, NULL, OCTET_STRING, OID, SEQUENCE, expect, integer, items, oid, seq, tlv

EC_PUBLIC_KEY = oid("1.2.840.10045.2.1")[2:]  # contents only, for comparison
SM2_CURVE = oid("1.2.156.10197.1.301")[2:]
_PBES2 = oid("1.2.840.113549.1.5.13")[2:]
_PBKDF2 = oid("1.2.840.113549.1.5.12")[2:]
_HMAC_SHA256 = oid("1.2.840.113549.2.9")[2:]
_AES256_CBC = oid("2.16.840.1.101.3.4.1.42")[2:]
ITERATIONS = 2048  # what pyca/cryptography's BestAvailableEncryption uses for PKCS#8
_MAX_ITERATIONS = 10_000_000  # a hostile file must not make loading take hours
_ALG_ID = seq(tlv(OID, EC_PUBLIC_KEY), tlv(OID, SM2_CURVE))


def _is_sm2_alg(alg_id: bytes) -> bool:
    """True for id-ecPublicKey on the SM2 curve; False for any other algorithm.

    Raises:
        ValueError: the AlgorithmIdentifier itself is malformed.
    """
    parts = items(tlv(SEQUENCE, alg_id))
    return len(parts) == 2 and parts[0] == (OID, EC_PUBLIC_KEY) and parts[1] == (OID, SM2_CURVE)


def spki(point: bytes) -> bytes:
    """SubjectPublicKeyInfo DER of an uncompressed SM2 point (65 bytes)."""
    return seq(_ALG_ID, tlv(BIT_STRING, b"\x00" + point))


def parse_spki(der: bytes) -> bytes | None:
    """The 65-byte point of an SM2 SubjectPublicKeyInfo; None when ``der`` names another algorithm.

    Raises:
        ValueError: not a SubjectPublicKeyInfo, or an SM2 one whose key is not an uncompressed point.
    """
    parts = items(der)
    if len(parts) != 2:
        raise ValueError("SubjectPublicKeyInfo has two elements")
    if not _is_sm2_alg(expect(parts[0], SEQUENCE)):
        return None
    bits = expect(parts[1], BIT_STRING)
    if len(bits) != 66 or bits[0] != 0 or bits[1] != 4:
        raise ValueError("an SM2 public key is an uncompressed point of 65 bytes")
    return bits[1:]


def private_info(d: int, point: bytes) -> bytes:
    """PKCS#8 PrivateKeyInfo DER holding an RFC 5915 ECPrivateKey (with its public key)."""
    ec_key = seq(integer(1), tlv(OCTET_STRING, d.to_bytes(32, "big")), tlv(0xA1, tlv(BIT_STRING, b"\x00" + point)))
    return seq(integer(0), _ALG_ID, tlv(OCTET_STRING, ec_key))


def parse_private_info(der: bytes) -> tuple[int, bytes | None] | None:
    """(scalar, 65-byte public point or None) of an SM2 PrivateKeyInfo; None for another algorithm.

    Raises:
        ValueError: malformed PKCS#8 or ECPrivateKey.
    """
    parts = items(der)
    if len(parts) < 3 or _der.read_int(parts[0]) not in (0, 1):
        raise ValueError("not a PKCS#8 PrivateKeyInfo")
    if not _is_sm2_alg(expect(parts[1], SEQUENCE)):
        return None
    inner = items(expect(parts[2], OCTET_STRING))
    if len(inner) < 2 or _der.read_int(inner[0]) != 1:
        raise ValueError("not an RFC 5915 ECPrivateKey")
    scalar = expect(inner[1], OCTET_STRING)
    if len(scalar) != 32:
        raise ValueError("an SM2 private key is 32 bytes")
    point = None
    for tag, content in inner[2:]:
        if tag == 0xA0 and content != tlv(OID, SM2_CURVE):
            raise ValueError("ECPrivateKey names another curve")
        if tag == 0xA1:
            t, bits, end = _der.read(content)
            if t != BIT_STRING or end != len(content) or len(bits) != 66 or bits[:2] != b"\x00\x04":
                raise ValueError("an SM2 public key is an uncompressed point of 65 bytes")
            point = bits[1:]
    return int.from_bytes(scalar, "big"), point


def _pbkdf2(passphrase: bytes, salt: bytes, iterations: int) -> bytes:
    return PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase)


def encrypt(info: bytes, passphrase: bytes) -> bytes:
    """EncryptedPrivateKeyInfo DER: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC (RFC 8018 §6.2, RFC 5958 §3)."""
    salt, iv = os.urandom(16), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(info) + padder.finalize()
    enc = Cipher(algorithms.AES(_pbkdf2(passphrase, salt, ITERATIONS)), modes.CBC(iv)).encryptor()
    ciphertext = enc.update(plain) + enc.finalize()
    kdf = seq(
        tlv(OID, _PBKDF2),
        seq(tlv(OCTET_STRING, salt), integer(ITERATIONS), seq(tlv(OID, _HMAC_SHA256), tlv(NULL, b""))),
    )
    scheme = seq(tlv(OID, _AES256_CBC), tlv(OCTET_STRING, iv))
    return seq(seq(tlv(OID, _PBES2), seq(kdf, scheme)), tlv(OCTET_STRING, ciphertext))


def decrypt(der: bytes, passphrase: bytes) -> bytes:
    """The PrivateKeyInfo inside an EncryptedPrivateKeyInfo (PBES2 + PBKDF2-HMAC-SHA256 + AES-256-CBC).

    Raises:
        ValueError: another scheme, malformed, or a wrong passphrase (bad padding or no PKCS#8 inside).
    """
    outer = items(der)
    if len(outer) != 2:
        raise ValueError("not an EncryptedPrivateKeyInfo")
    alg = items(tlv(SEQUENCE, expect(outer[0], SEQUENCE)))
    if len(alg) != 2 or alg[0] != (OID, _PBES2):
        raise ValueError("only PBES2 is supported")
    kdf, scheme = (items(tlv(SEQUENCE, expect(p, SEQUENCE))) for p in items(tlv(SEQUENCE, alg[1][1])))
    if len(kdf) != 2 or kdf[0] != (OID, _PBKDF2) or len(scheme) != 2 or scheme[0] != (OID, _AES256_CBC):
        raise ValueError("only PBKDF2 with AES-256-CBC is supported")
    params = items(tlv(SEQUENCE, expect(kdf[1], SEQUENCE)))
    salt, iterations = expect(params[0], OCTET_STRING), _der.read_int(params[1])
    rest = [p for p in params[2:] if p[0] != INTEGER]  # an optional keyLength may precede the PRF
    if not rest or items(tlv(SEQUENCE, expect(rest[0], SEQUENCE)))[0] != (OID, _HMAC_SHA256):
        raise ValueError("only HMAC-SHA256 is supported as the PBKDF2 PRF")
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise ValueError("PBKDF2 iteration count out of range")
    iv, ciphertext = expect(scheme[1], OCTET_STRING), expect(outer[1], OCTET_STRING)
    if len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
        raise ValueError("bad AES-256-CBC parameters")
    dec = Cipher(algorithms.AES(_pbkdf2(passphrase, salt, iterations)), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(ciphertext) + dec.finalize()) + unpadder.finalize()


def to_pem(label: str, der: bytes) -> bytes:
    """PEM armour (RFC 7468 §2), 64 characters a line."""
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def from_pem(pem: bytes) -> tuple[str, bytes]:
    """(label, DER) of the first PEM block.

    Raises:
        ValueError: no PEM block, mismatched labels or bad Base64.
    """
    text = pem.decode("ascii", "replace")
    start = text.find("-----BEGIN ")
    head_end = text.find("-----", start + 11)
    if start < 0 or head_end < 0:
        raise ValueError("no PEM block")
    label = text[start + 11 : head_end]
    footer = f"-----END {label}-----"
    end = text.find(footer, head_end)
    if end < 0:
        raise ValueError("PEM block without its end line")
    try:
        der = base64.b64decode("".join(text[head_end + 5 : end].split()), validate=True)
    except binascii.Error:
        raise ValueError("bad Base64 in PEM") from None
    return label, der
