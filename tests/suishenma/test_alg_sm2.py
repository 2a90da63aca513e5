"""SM2 with SM3 (alg -65538): the standard's examples, key files, codes, lists, and the bad inputs
that apply to SM2 (Wycheproof-style), each rejected with its reason."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from gmalglib.sm2 import SM2 as GmalgSM2
from gmalglib.sm3 import SM3
from hypothesis import given, settings
from hypothesis import strategies as st

from suishenma import (
    Alg,
    Claims,
    CodeSignatureError,
    EntryStatus,
    IssuerEntry,
    KeyFileError,
    KeyRing,
    ListError,
    Reason,
    SigningKey,
    Status,
    StatusList,
    VerificationKey,
    mint,
    parse_status_list,
    parse_trust_list,
    sign_status_list,
    sign_trust_list,
    verify,
)
from suishenma._base45 import b45decode
from suishenma._cose import _sig_structure
from suishenma._sm2_pkcs8 import spki
from suishenma.labels import TRUST_LIST_TYP
from suishenma.sm2 import DEFAULT_ID, GX, GY, N, P, SM2PrivateKey, SM2PublicKey, on_curve
from suishenma.sm2 import A as CURVE_A
from suishenma.sm2 import B as CURVE_B
from tests.conftest import NOW
from tests.suishenma import forge

H = bytes.fromhex
DAY = 86400
# GB/T 32918.5-2017 Annex A (GM/T 0003.5-2012): the recommended curve, ID_A = 1234567812345678.
ANNEX_D = int("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8", 16)
ANNEX_P = H(
    "04"
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
ANNEX_K = H("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21")
ANNEX_Z = H("B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3")
ANNEX_E = H("F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640")
ANNEX_SIG = H(
    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)
MSG = b"message digest"
# GB/T 32918.2-2016 Annex A.2 (GM/T 0003.2-2012): the test curve; only its hash values apply here.
TEST_CURVE_Z_INPUT = H(
    "0090414C494345313233405941484F4F2E434F4D"  # ENTL || "ALICE123@YAHOO.COM"
    "787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498"
    "63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A"
    "421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D"
    "0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2"
    "0AE4C7798AA0F119471BEE11825BE46202BB79E2A5844495E97C04FF4DF2548A"
    "7C0240F88F1CD4E16352A73C17B7F16F07353E53A176D684A9FE0C6BB798E857"
)
TEST_CURVE_Z = H("F4A38489E32B45B6F876E3AC2168CA392362DC8F23459C1D1146FC3DBFB7BC9A")
TEST_CURVE_E = H("B524F552CD82B8B028476E005C377FB19A87E6FC682D48BB5D42E3D9B9EFFE76")


def _sm3(data: bytes) -> bytes:
    h = SM3()
    h.update(data)
    digest: bytes = h.digest()
    return digest


@pytest.fixture(scope="module")
def sm2_key() -> SigningKey:
    return SigningKey.generate(Alg.SM2)


@pytest.fixture(scope="module")
def sm2_ring(sm2_key: SigningKey) -> KeyRing:
    return KeyRing.of(sm2_key.public(), issuer="SH")


def _signed_parts(key: SigningKey) -> tuple[bytes, bytes]:
    """(protected header, payload) of a real SM2 dynamic code."""
    msg = cbor2.loads(b45decode(mint(Claims.dynamic(bytes(8), Status.GREEN, NOW), key)[4:])).value
    return msg[0], msg[2]


def _code(protected: bytes, payload: bytes, signature: bytes) -> str:
    return forge.text(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature])))


# --- the standard's published examples ---------------------------------------------------------


def test_annex_key_gives_the_annex_public_key_and_kid_rule() -> None:
    key = SigningKey.from_private_key(SM2PrivateKey(ANNEX_D))
    assert key.alg is Alg.SM2
    assert key.public().public_key.point == ANNEX_P  # type: ignore[union-attr]
    assert key.kid == hashlib.sha256(spki(ANNEX_P)).digest()[:4]


def test_sm3_gives_the_annex_z_and_e_values() -> None:
    entl_id = b"\x00\x80" + DEFAULT_ID
    curve = b"".join(v.to_bytes(32, "big") for v in (CURVE_A, CURVE_B, GX, GY))
    assert _sm3(entl_id + curve + ANNEX_P[1:]) == ANNEX_Z
    assert GmalgSM2(pk=ANNEX_P, uid=DEFAULT_ID).get_entity_info() == ANNEX_Z
    assert _sm3(ANNEX_Z + MSG) == ANNEX_E
    assert _sm3(TEST_CURVE_Z_INPUT) == TEST_CURVE_Z and _sm3(TEST_CURVE_Z + MSG) == TEST_CURVE_E


def test_library_signs_the_annex_example_with_the_annex_k() -> None:
    """gmalglib's random source is little-endian: k is handed to it reversed."""
    signer = GmalgSM2(ANNEX_D.to_bytes(32, "big"), ANNEX_P, DEFAULT_ID, rnd_fn=lambda _n: ANNEX_K[::-1])
    assert signer.sign(MSG) == ANNEX_SIG


def test_annex_signature_verifies_and_a_changed_one_does_not() -> None:
    public = SM2PublicKey(ANNEX_P)
    public.verify(ANNEX_SIG, MSG)
    vk = VerificationKey.from_public_key(public)
    with pytest.raises(CodeSignatureError) as exc:
        vk.verify_signature(MSG + b".", ANNEX_SIG)
    assert exc.value.reason is Reason.BAD_SIGNATURE


# --- codes, lists, key files ---------------------------------------------------------------------


def test_sm2_code_roundtrip(sm2_key: SigningKey, sm2_ring: KeyRing) -> None:
    code = mint(Claims.dynamic(bytes(8), Status.GREEN, NOW), sm2_key)
    v = verify(code, sm2_ring, now=NOW)
    assert v.alg is Alg.SM2 and v.kid == sm2_key.kid
    protected, _ = _signed_parts(sm2_key)
    assert cbor2.loads(protected)[1] == -65538
    assert len(cbor2.loads(b45decode(code[4:])).value[3]) == 64  # raw r || s


def test_sm2_issuer_in_trust_list_and_status_list(sm2_key: SigningKey) -> None:
    root = SigningKey.generate()
    entry = IssuerEntry(sm2_key.public(), "SH", NOW - DAY, NOW + DAY, status_uri="/v1/status-lists/SH")
    tl = parse_trust_list(sign_trust_list([entry], root, version=1, now=NOW, ttl=DAY), root.public(), now=NOW)
    assert tl.issuers[0].key.alg is Alg.SM2 and tl.issuers[0].key.kid == sm2_key.kid
    code = mint(Claims.dynamic(bytes(8), Status.GREEN, NOW), sm2_key)
    assert verify(code, tl.keyring, now=NOW).claims.status is Status.GREEN
    lst = StatusList(64)
    lst.set(5, EntryStatus.INVALID)
    token = sign_status_list(lst, sm2_key, uri="/s", issuer="SH", version=1, now=NOW, valid_for=DAY, ttl=60)
    parsed = parse_status_list(token, {sm2_key.kid: sm2_key.public()}, now=NOW)
    assert parsed.status(5) is EntryStatus.INVALID


def test_sm2_key_files_roundtrip_encrypted(sm2_key: SigningKey) -> None:
    pem = sm2_key.pem(b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert SigningKey.from_pem(pem, b"correct horse").kid == sm2_key.kid
    assert VerificationKey.from_pem(sm2_key.public().pem()).kid == sm2_key.kid
    with pytest.raises(KeyFileError) as exc:
        SigningKey.from_pem(pem, b"wrong")
    assert exc.value.reason is Reason.KEY_FILE and "wrong passphrase" in exc.value.detail
    with pytest.raises(KeyFileError) as exc:
        SigningKey.from_pem(pem, None)
    assert exc.value.reason is Reason.KEY_FILE and "SUISHENMA_KEY_PASSPHRASE" in exc.value.detail


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_reads_our_sm2_files_and_we_read_its(tmp_path: Path, sm2_key: SigningKey) -> None:
    ours = tmp_path / "ours.key"
    ours.write_bytes(sm2_key.pem(b"pw"))
    out = subprocess.run(
        ["openssl", "pkey", "-in", str(ours), "-passin", "pass:pw", "-pubout"], capture_output=True, check=True
    )
    assert out.stdout == sm2_key.public().pem()
    theirs = tmp_path / "theirs.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(theirs)], check=True, capture_output=True)
    pub = subprocess.run(["openssl", "pkey", "-in", str(theirs), "-pubout"], capture_output=True, check=True).stdout
    key = SigningKey.from_pem(theirs.read_bytes())
    assert key.alg is Alg.SM2 and key.kid == VerificationKey.from_pem(pub).kid


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 1), (1, 0), (N, 1), (1, N), (2**256 - 1, 1)],
    ids=["r-zero", "s-zero", "r-is-n", "s-is-n", "r-above-n"],
)
def test_sm2_signature_components_out_of_range_rejected(sm2_key: SigningKey, sm2_ring: KeyRing, r: int, s: int) -> None:
    protected, payload = _signed_parts(sm2_key)
    with pytest.raises(CodeSignatureError) as exc:
        verify(_code(protected, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big")), sm2_ring, now=NOW)
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_sm2_signature_for_another_message_rejected(sm2_key: SigningKey, sm2_ring: KeyRing) -> None:
    protected, payload = _signed_parts(sm2_key)
    other = cbor2.dumps({**cbor2.loads(payload), 6: NOW + 1})
    sig = sm2_key.cose_key.sign(_sig_structure(protected, payload))
    with pytest.raises(CodeSignatureError) as exc:
        verify(_code(protected, other, sig), sm2_ring, now=NOW)
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_sm2_signature_under_another_user_id_rejected(sm2_ring: KeyRing) -> None:
    key = SigningKey.from_private_key(SM2PrivateKey(ANNEX_D))
    ring = KeyRing.of(key.public(), issuer="SH")
    protected, payload = _signed_parts(key)
    alice = GmalgSM2(ANNEX_D.to_bytes(32, "big"), ANNEX_P, b"ALICE123@YAHOO.COM")
    with pytest.raises(CodeSignatureError) as exc:
        verify(_code(protected, payload, alice.sign(_sig_structure(protected, payload))), ring, now=NOW)
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_sm2_point_not_on_the_curve_rejected(sm2_key: SigningKey) -> None:
    point = sm2_key.public().public_key.point  # type: ignore[union-attr]
    off = point[:33] + ((int.from_bytes(point[33:], "big") + 1) % P).to_bytes(32, "big")
    assert not on_curve(int.from_bytes(off[1:33], "big"), int.from_bytes(off[33:], "big"))
    with pytest.raises(KeyFileError) as exc:
        VerificationKey.from_der(spki(off), Alg.SM2)
    assert exc.value.reason is Reason.KEY_FILE and "not a point on the curve" in exc.value.detail
    entry = IssuerEntry(sm2_key.public(), "SH", NOW - DAY, NOW + DAY).to_cbor()
    entry[2] = spki(off)
    root = SigningKey.generate()
    body = {1: "root", 6: NOW, 4: NOW + DAY, -65537: {10: 1, 11: [entry]}}
    header = {1: int(root.alg), 4: root.kid, 16: TRUST_LIST_TYP}
    token = forge.sign1(cbor2.dumps(body), root, protected=header)
    with pytest.raises(ListError) as lexc:
        parse_trust_list(token, root.public(), now=NOW)
    assert lexc.value.reason is Reason.LIST_MALFORMED and "not a point on the curve" in lexc.value.detail


def test_p256_key_under_the_sm2_identifier_rejected() -> None:
    der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFileError) as exc:
        VerificationKey.from_der(der, Alg.SM2)
    assert exc.value.reason is Reason.KEY_FILE and exc.value.detail == "key is ES256, not SM2"


def test_sm2_key_under_the_es256_identifier_rejected(sm2_key: SigningKey) -> None:
    with pytest.raises(KeyFileError) as exc:
        VerificationKey.from_der(sm2_key.public().der, Alg.ES256)
    assert exc.value.reason is Reason.KEY_FILE and exc.value.detail == "key is SM2, not ES256"


def test_es256_header_with_an_sm2_key_is_an_algorithm_mismatch(sm2_key: SigningKey, sm2_ring: KeyRing) -> None:
    _, payload = _signed_parts(sm2_key)
    protected = cbor2.dumps({1: int(Alg.ES256), 4: sm2_key.kid})
    sig = sm2_key.cose_key.sign(_sig_structure(protected, payload))
    with pytest.raises(CodeSignatureError) as exc:
        verify(_code(protected, payload, sig), sm2_ring, now=NOW)
    assert exc.value.reason is Reason.ALG_MISMATCH and exc.value.detail == "header says ES256, key is SM2"


def test_sm2_header_with_a_p256_key_is_an_algorithm_mismatch(es_key: SigningKey, ring: KeyRing) -> None:
    _, payload = _signed_parts(es_key)
    protected = cbor2.dumps({1: int(Alg.SM2), 4: es_key.kid})
    with pytest.raises(CodeSignatureError) as exc:
        verify(_code(protected, payload, bytes(64)), ring, now=NOW)
    assert exc.value.reason is Reason.ALG_MISMATCH and exc.value.detail == "header says SM2, key is ES256"


@settings(max_examples=200, deadline=None)
@given(sig=st.binary(min_size=0, max_size=80))
def test_sm2_any_signature_bytes_are_a_bad_signature(sig: bytes) -> None:
    public = SM2PublicKey(ANNEX_P)
    vk = VerificationKey.from_public_key(public)
    with pytest.raises(CodeSignatureError) as exc:
        vk.verify_signature(MSG + b"?", sig)
    assert exc.value.reason is Reason.BAD_SIGNATURE


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), cut=st.integers(0, 200))
def test_sm2_key_decoders_raise_only_key_file_errors(data: bytes, cut: int) -> None:
    """Mutated and truncated SM2 key files never let a foreign exception out."""
    good = SigningKey.from_private_key(SM2PrivateKey(ANNEX_D))
    for der in (data, good.public().der[:cut] + data[:4], spki(ANNEX_P)[:cut]):
        try:
            VerificationKey.from_der(der)
        except KeyFileError as exc:
            assert exc.reason is Reason.KEY_FILE
    body = good.pem().split(b"\n")[1:-2]
    pem = b"-----BEGIN PRIVATE KEY-----\n" + b"".join(body)[:cut] + b"\n-----END PRIVATE KEY-----\n"
    try:
        SigningKey.from_pem(pem)
    except KeyFileError as exc:
        assert exc.reason is Reason.KEY_FILE


def test_missing_sm2_library_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, sm2_key: SigningKey) -> None:
    code = mint(Claims.dynamic(bytes(8), Status.GREEN, NOW), sm2_key)
    fresh = VerificationKey.from_der(sm2_key.public().der)  # no library object cached yet
    monkeypatch.setitem(sys.modules, "gmalglib.sm2", None)
    with pytest.raises(CodeSignatureError) as exc:
        verify(code, KeyRing.of(fresh, issuer="SH"), now=NOW)
    assert exc.value.reason is Reason.ALG_UNAVAILABLE and "suishenma[sm2]" in exc.value.detail
    with pytest.raises(KeyFileError) as kexc:
        SigningKey.generate(Alg.SM2)
    assert kexc.value.reason is Reason.ALG_UNAVAILABLE
    assert "SM2" in kexc.value.message_zh
