"""Wycheproof vectors through the project's COSE verification path (VerificationKey.verify_signature)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from suishenma import CodeSignatureError, Reason, VerificationKey
from suishenma.labels import Alg
from tests.conftest import shared_data


def _run(file: str, make_key: object) -> tuple[int, int]:
    data = json.loads(shared_data("wycheproof", file).read_text())
    checked = accepted = 0
    for group in data["testGroups"]:
        key = make_key(group["publicKey"])  # type: ignore[operator]
        for t in group["tests"]:
            msg, sig = bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])
            try:
                key.verify_signature(msg, sig)
                ok = True
            except CodeSignatureError:
                ok = False
            # "acceptable" vectors are legacy encodings; we hold them to the strict reading (reject).
            expected = t["result"] == "valid"
            assert ok == expected, f"tcId {t['tcId']} ({t['result']}, {t['flags']})"
            checked += 1
            accepted += ok
    return checked, accepted


def test_wycheproof_ecdsa_p256_p1363() -> None:
    def key(pk: dict[str, str]) -> VerificationKey:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(pk["uncompressed"]))
        return VerificationKey.from_public_key(public, Alg.ES256)

    checked, accepted = _run("ecdsa_secp256r1_sha256_p1363_test.json", key)
    assert (checked, accepted) == (252, 169)


def test_wycheproof_ed25519() -> None:
    def key(pk: dict[str, str]) -> VerificationKey:
        return VerificationKey.from_public_key(ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(pk["pk"])))

    checked, accepted = _run("ed25519_test.json", key)
    assert (checked, accepted) == (150, 88)


def test_wycheproof_vectors_present_or_skipped_cleanly() -> None:
    path = shared_data("wycheproof")
    assert path.is_dir()


@pytest.mark.parametrize("n", [0, 63, 65])
def test_signature_of_wrong_length_rejected(n: int) -> None:
    key = VerificationKey.from_public_key(ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(CodeSignatureError) as exc:
        key.verify_signature(b"msg", bytes(n))
    assert exc.value.reason is Reason.BAD_SIGNATURE
