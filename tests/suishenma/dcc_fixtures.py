"""EU DCC test codes built from scratch: signer certificates, and HC1 texts in every shape the DCC
verifiers meet (headers in either bucket, tagged or not, float dates, tag-0 date-times)."""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from suishenma._base45 import b45encode
from suishenma._cose import _sig_structure
from suishenma.dcc import dcc_kid

HCERT = {"ver": "1.3.0", "nam": {"fn": "Musterfrau", "gn": "Erika"}, "dob": "1964-08-12", "v": [{"dn": 2, "sd": 2}]}
ALG_IDS = {"ES256": -7, "PS256": -37, "EdDSA": -8, "Ed25519": -19, "ES384": -35}
# The signer certificates below are valid for these two years; codes are made inside them.
CERT_FROM = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CERT_DAYS = 730


def make_signer(
    alg: str, *, rsa_bits: int = 2048, curve: ec.EllipticCurve | None = None, days: int = CERT_DAYS
) -> tuple[Any, bytes]:
    """A private key and its self-signed certificate (PEM), valid from ``CERT_FROM`` for ``days``."""
    key: Any
    if alg == "PS256":
        key = rsa.generate_private_key(65537, rsa_bits)
    elif alg in ("EdDSA", "Ed25519"):
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = ec.generate_private_key(curve or ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"), x509.NameAttribute(NameOID.COMMON_NAME, "DSC")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(CERT_FROM)
        .not_valid_after(CERT_FROM + dt.timedelta(days=days))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def kid_of(cert_pem: bytes) -> bytes:
    """The DCC kid of a PEM certificate."""
    return dcc_kid(x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER))


def claims(iat: float | None, exp: float | None, *, hcert: Any = HCERT, iss: Any = "DE") -> dict[int, Any]:
    """A DCC claims map; ``None`` leaves a claim out."""
    m: dict[int, Any] = {} if iss is None else {1: iss}
    if iat is not None:
        m[6] = iat
    if exp is not None:
        m[4] = exp
    m[-260] = {1: hcert}
    return m


def sign(key: Any, alg: str, tbs: bytes) -> bytes:
    """A raw COSE signature (ES256 as r || s, RFC 9053 §2.1; PS256 with salt 32, RFC 8230 §2)."""
    if alg == "PS256":
        return bytes(key.sign(tbs, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(tbs)
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def build_hc1(
    key: Any,
    alg: str,
    payload: dict[int, Any] | bytes,
    *,
    protected: dict[int, Any],
    unprotected: dict[int, Any] | None = None,
    form: str = "tagged",
) -> str:
    """An HC1 text signed by ``key`` with exactly the headers given; ``form`` is ``tagged`` (18),
    ``untagged``, ``cwt`` (61 around 18), ``cwt-untagged`` (61 around the bare array) or ``sign`` (98)."""
    p = cbor2.dumps(protected) if protected else b""
    body = payload if isinstance(payload, bytes) else cbor2.dumps(payload)
    array = [p, unprotected or {}, body, sign(key, alg, _sig_structure(p, body))]
    item: Any = {
        "tagged": cbor2.CBORTag(18, array),
        "untagged": array,
        "cwt": cbor2.CBORTag(61, cbor2.CBORTag(18, array)),
        "cwt-untagged": cbor2.CBORTag(61, array),
        "sign": cbor2.CBORTag(98, array),
    }[form]
    return "HC1:" + b45encode(zlib.compress(cbor2.dumps(item), 9))


def make_hc1(
    key: Any,
    cert_pem: bytes,
    alg: str,
    iat: float | None,
    exp: float | None,
    *,
    kid_unprotected: bool = False,
    form: str = "tagged",
    **claim_options: Any,
) -> str:
    """The usual HC1: alg and kid in the protected header (or the kid unprotected)."""
    kid, alg_id = kid_of(cert_pem), ALG_IDS[alg]
    protected = {1: alg_id} if kid_unprotected else {1: alg_id, 4: kid}
    unprotected = {4: kid} if kid_unprotected else None
    return build_hc1(
        key, alg, claims(iat, exp, **claim_options), protected=protected, unprotected=unprotected, form=form
    )
