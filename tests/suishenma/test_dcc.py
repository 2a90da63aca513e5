"""EU DCC (HC1) verification: the codec follows the standards, not just itself."""

from __future__ import annotations

import pytest

from suishenma import CodeError, CodeFormatError, CodeSignatureError, CodeTimeError, KeyFileError, Reason, dcc_signer
from suishenma._clock import format_instant
from suishenma.cli import main
from suishenma.dcc import verify_dcc
from tests.conftest import NOW
from tests.suishenma.dcc_fixtures import HCERT, make_hc1, make_signer


@pytest.fixture(scope="module", params=["ES256", "PS256"])
def signer(request: pytest.FixtureRequest) -> tuple[object, bytes, str]:
    key, pem = make_signer(request.param)
    return key, pem, request.param


def test_dcc_verifies_with_signer_certificate(signer: tuple[object, bytes, str]) -> None:
    key, pem, alg = signer
    code = make_hc1(key, pem, alg, NOW - 100, NOW + 86400)
    s = dcc_signer(pem)
    r = verify_dcc(code, {s.kid: s}, now=NOW)
    assert r.country == "DE" and r.hcert == HCERT and r.kid == s.kid


def test_dcc_kid_in_unprotected_header_accepted(signer: tuple[object, bytes, str]) -> None:
    key, pem, alg = signer
    s = dcc_signer(pem)
    assert verify_dcc(make_hc1(key, pem, alg, NOW, NOW + 60, kid_unprotected=True), {s.kid: s}, now=NOW)


def test_dcc_wrong_certificate_rejected(signer: tuple[object, bytes, str]) -> None:
    key, pem, alg = signer
    _other_key, other_pem = make_signer(alg)
    code = make_hc1(key, pem, alg, NOW, NOW + 60)
    impostor = dcc_signer(other_pem, kid=dcc_signer(pem).kid)  # same kid, other key
    with pytest.raises(CodeSignatureError) as exc:
        verify_dcc(code, {impostor.kid: impostor}, now=NOW)
    assert exc.value.reason is Reason.BAD_SIGNATURE
    s = dcc_signer(other_pem)
    with pytest.raises(CodeSignatureError) as exc:
        verify_dcc(code, {s.kid: s}, now=NOW)
    assert exc.value.reason is Reason.UNKNOWN_KID


def test_dcc_expired_rejected(signer: tuple[object, bytes, str]) -> None:
    key, pem, alg = signer
    s = dcc_signer(pem)
    with pytest.raises(CodeTimeError):
        verify_dcc(make_hc1(key, pem, alg, NOW - 1000, NOW - 400), {s.kid: s}, now=NOW)


def test_dcc_must_be_zlib_compressed() -> None:
    with pytest.raises(CodeFormatError) as exc:
        verify_dcc("HC1:" + "6BF", {}, now=NOW)  # Base45 of b"\xd2\x84" (raw COSE, no zlib)
    assert exc.value.reason is Reason.BAD_COMPRESSION


def test_dcc_bare_key_needs_kid() -> None:
    _, pem = make_signer("ES256")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pub = (
        x509.load_pem_x509_certificate(pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFileError):
        dcc_signer(pub)
    assert dcc_signer(pub, kid=b"12345678").kid == b"12345678"


def test_dcc_rejects_our_own_profile_codes() -> None:
    with pytest.raises(CodeError):
        verify_dcc("SM1:ABC", {}, now=NOW)


def test_cli_verifies_dcc(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    key, pem = make_signer("ES256")
    cert = Path(str(tmp_path)) / "dsc.pem"
    cert.write_bytes(pem)
    code = make_hc1(key, pem, "ES256", NOW, NOW + 86400)
    at = format_instant(NOW + 60)
    assert main(["verify", code, "--profile", "eu-dcc", "--key", str(cert), "--at", at, "--json"]) == 0
    assert '"country": "DE"' in capsys.readouterr().out
    assert main(["verify", code, "--profile", "eu-dcc", "--key", str(cert), "--at", "2030-01-01T00:00:00"]) == 1
