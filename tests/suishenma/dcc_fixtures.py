"""EU DCC test codes built from scratch: self-signed signer certificates, HC1 text."""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from suishenma._base45 import b45encode
from suishenma._cose import _sig_structure
from suishenma.dcc import dcc_kid

HCERT = {"ver": "1.3.0", "nam": {"fn": "Musterfrau", "gn": "Erika"}, "dob": "1964-08-12", "v": [{"dn": 2, "sd": 2}]}


def make_signer(alg: str) -> tuple[Any, bytes]:
    """A private key and its self-signed certificate (PEM)."""
    key: Any = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"), x509.NameAttribute(NameOID.COMMON_NAME, "DSC")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=730))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def make_hc1(key: Any, cert_pem: bytes, alg: str, iat: int, exp: int, *, kid_unprotected: bool = False) -> str:
    """An HC1 code signed by ``key`` (ES256 raw r||s or PS256)."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    kid = dcc_kid(der)
    alg_id = -7 if alg == "ES256" else -37
    protected = cbor2.dumps({1: alg_id} if kid_unprotected else {1: alg_id, 4: kid})
    payload = cbor2.dumps({1: "DE", 6: iat, 4: exp, -260: {1: HCERT}})
    tbs = _sig_structure(protected, payload)
    if alg == "ES256":
        r, s = _decode_dss(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = key.sign(tbs, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    unprotected = {4: kid} if kid_unprotected else {}
    message = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, sig]))
    return "HC1:" + b45encode(zlib.compress(message, 9))


def _decode_dss(der: bytes) -> tuple[int, int]:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    return decode_dss_signature(der)
