"""Device-bound codes: the phone presents a day credential with its own key; every refusal by reason."""

from __future__ import annotations

import base64
import hashlib
import json

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from suishenma import (
    Alg,
    Claims,
    CodeClaimsError,
    CodeError,
    CodeFormatError,
    CodeSignatureError,
    CodeTimeError,
    CodeType,
    DeviceKey,
    KeyRing,
    Reason,
    SigningKey,
    Status,
    TrustedKey,
    UsageError,
    _cose,
    credential_text,
    inspect,
    mint,
    mint_credential,
    present,
    read_credential,
    verify,
)
from suishenma._base45 import b45decode, b45encode
from suishenma.device import _time_claims, countersign_structure
from suishenma.labels import DEVICE_PREFIX
from suishenma.qr import qr_version
from tests.conftest import NOW, SUBJECT

INDEX = 7_000_000  # a city-sized status list: the index takes its full 5 bytes
# A tampered presentation fails its structure or one of its two signatures: it never reaches the
# claims or the time checks.
TAMPERED = {
    Reason.MALFORMED,
    Reason.UNTAGGED,
    Reason.UNKNOWN_KID,
    Reason.ALG_MISMATCH,
    Reason.BAD_SIGNATURE,
    Reason.BAD_DEVICE_SIGNATURE,
}


@pytest.fixture(scope="module")
def issuer_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def sh_ring(issuer_key: SigningKey) -> KeyRing:
    return KeyRing([TrustedKey(issuer_key.public(), "SH")])


@pytest.fixture(scope="module", params=[Alg.EdDSA, Alg.ES256], ids=["ed25519", "p256"])
def phone(request: pytest.FixtureRequest) -> SigningKey:
    return SigningKey.generate(request.param)


def _credential(issuer_key: SigningKey, phone: SigningKey, **kw: object) -> bytes:
    claims = Claims.device(SUBJECT, Status.GREEN, NOW, INDEX, DeviceKey.of(phone), **kw)  # type: ignore[arg-type]
    return mint_credential(claims, issuer_key)


def _parts(code: str) -> list[object]:
    tag = cbor2.loads(b45decode(code[len(DEVICE_PREFIX) :]))
    return list(tag.value)


def _rebuild(parts: list[object]) -> str:
    return DEVICE_PREFIX + b45encode(cbor2.dumps(cbor2.CBORTag(18, parts)))


def test_presentation_roundtrip(issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing) -> None:
    code = present(_credential(issuer_key, phone), phone, now=NOW + 3600)
    v = verify(code, sh_ring, now=NOW + 3620)
    assert v.claims.code_type is CodeType.DEVICE and v.claims.issuer == "SH" and v.claims.subject == SUBJECT
    assert v.claims.status_index == INDEX and v.claims.device_key == DeviceKey.of(phone)
    assert (v.presented_at, v.issued_at, v.expires_at) == (NOW + 3600, NOW + 3600, NOW + 3660)
    assert v.kid == issuer_key.kid and v.alg is issuer_key.alg and v.trusted is sh_ring[issuer_key.kid]


def test_code_without_identity_fits_qr_version_11_at_ecc_m(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing
) -> None:
    code = present(_credential(issuer_key, phone), phone, now=NOW + 86_000)
    assert qr_version(code, "M") <= 11, len(code)


def test_independent_countersign_structure_matches(issuer_key: SigningKey, phone: SigningKey) -> None:
    """RFC 9338 §3.3 built with a general CBOR encoder verifies the signature our phone side made."""
    code = present(_credential(issuer_key, phone), phone, now=NOW + 5)
    protected, unprotected, payload, signature = _parts(code)
    structure = cbor2.dumps(["CounterSignature0V2", protected, cbor2.dumps({6: NOW + 5}), payload, [signature]])
    assert structure == countersign_structure(protected, cbor2.dumps({6: NOW + 5}), payload, signature)  # type: ignore[arg-type]
    sig = unprotected[12]  # type: ignore[index]
    public = phone.public().public_key
    if phone.alg is Alg.EdDSA:
        public.verify(sig, structure)  # type: ignore[call-arg]
    else:
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        public.verify(der, structure, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg, arg-type]


def test_presentation_signed_by_another_phone_is_refused(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing
) -> None:
    thief = SigningKey.generate(phone.alg)
    protected, _, payload, signature = _parts(present(_credential(issuer_key, phone), phone, now=NOW))
    forged_sig = thief.cose_key.sign(countersign_structure(protected, cbor2.dumps({6: NOW}), payload, signature))  # type: ignore[arg-type]
    forged = _rebuild([protected, {12: forged_sig, 15: {6: NOW}}, payload, signature])
    with pytest.raises(CodeSignatureError) as exc:
        verify(forged, sh_ring, now=NOW + 1)
    assert exc.value.reason is Reason.BAD_DEVICE_SIGNATURE
    with pytest.raises(UsageError, match="bound to another device key"):
        present(_credential(issuer_key, phone), thief, now=NOW)


def test_screenshot_with_a_later_time_written_in_is_refused(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing
) -> None:
    """Someone edits the presentation time of a captured code to make it fresh again."""
    protected, unprotected, payload, signature = _parts(present(_credential(issuer_key, phone), phone, now=NOW))
    unprotected[15] = {6: NOW + 600}  # type: ignore[index]
    with pytest.raises(CodeSignatureError) as exc:
        verify(_rebuild([protected, unprotected, payload, signature]), sh_ring, now=NOW + 600)
    assert exc.value.reason is Reason.BAD_DEVICE_SIGNATURE


def test_credential_altered_is_a_bad_issuer_signature(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing
) -> None:
    protected, unprotected, payload, signature = _parts(present(_credential(issuer_key, phone), phone, now=NOW))
    claims = cbor2.loads(payload)  # type: ignore[arg-type]
    claims[-65537][0] = 0  # already green: flip the subject instead
    claims[2] = b"\x09" * 8
    with pytest.raises(CodeSignatureError) as exc:
        verify(_rebuild([protected, unprotected, cbor2.dumps(claims), signature]), sh_ring, now=NOW)
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_issuer_not_trusted_or_not_allowed_device_credentials(issuer_key: SigningKey, phone: SigningKey) -> None:
    code = present(_credential(issuer_key, phone), phone, now=NOW)
    with pytest.raises(CodeSignatureError) as exc:
        verify(code, KeyRing([TrustedKey(SigningKey.generate().public(), "SH")]), now=NOW)
    assert exc.value.reason is Reason.UNKNOWN_KID
    paper_only = KeyRing([TrustedKey(issuer_key.public(), "SH", code_types=frozenset({CodeType.OFFLINE}))])
    with pytest.raises(CodeClaimsError) as exc2:
        verify(code, paper_only, now=NOW)
    assert exc2.value.reason is Reason.TYPE_NOT_ALLOWED
    with pytest.raises(CodeClaimsError) as exc2:
        verify(code, KeyRing.of(issuer_key.public()), now=NOW)  # no issuer for the absent iss
    assert exc2.value.reason is Reason.MISSING_CLAIM and "names none" in exc2.value.detail


@pytest.mark.parametrize(
    ("presented", "now", "reason", "detail"),
    [
        (NOW + 86_300, NOW + 86_420, Reason.CREDENTIAL_EXPIRED, "credential expired"),  # day over
        (NOW + 100, NOW + 100 + 60 + 10, Reason.EXPIRED, "presented 70 s ago"),  # a screenshot
        (NOW + 100, NOW + 100 + 60 + 9, None, ""),  # inside the skew
        (NOW + 100, NOW + 100 - 11, Reason.NOT_YET_VALID, "in the future"),  # phone clock ahead
        (NOW - 15, NOW + 5, Reason.NOT_YET_VALID, "before its credential"),  # phone clock behind
    ],
)
def test_time_checks(
    issuer_key: SigningKey,
    phone: SigningKey,
    sh_ring: KeyRing,
    presented: int,
    now: int,
    reason: Reason | None,
    detail: str,
) -> None:
    code = present(_credential(issuer_key, phone), phone, now=presented)
    if reason is None:
        assert verify(code, sh_ring, now=now).presented_at == presented
        return
    with pytest.raises(CodeTimeError) as exc:
        verify(code, sh_ring, now=now)
    assert exc.value.reason is reason and detail in exc.value.detail


@pytest.mark.parametrize("skew", [0, 3, 45])
def test_time_checks_use_the_callers_skew(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing, skew: int
) -> None:
    """Every boundary of a presentation moves with the skew the caller passes (a transit gate allows 5 s)."""
    cred = _credential(issuer_key, phone, ttl=3600)  # valid NOW .. NOW + 3600
    at = NOW + 1000

    def reason(presented: int, now: int) -> Reason | None:
        try:
            verify(present(cred, phone, now=presented), sh_ring, now=now, skew=skew)
        except CodeTimeError as exc:
            return exc.reason
        return None

    assert reason(at + skew, at) is None and reason(at + skew + 1, at) is Reason.NOT_YET_VALID
    assert reason(at, at + 60 + skew - 1) is None and reason(at, at + 60 + skew) is Reason.EXPIRED
    assert reason(NOW - skew, NOW) is None
    assert reason(NOW - skew - 1, NOW) is Reason.NOT_YET_VALID  # before its credential
    end = NOW + 3600
    assert reason(end + skew - 1, end + skew - 1) is None
    assert reason(end - 30, end + skew) is Reason.CREDENTIAL_EXPIRED


def test_inspect_shows_a_presentation_unverified_with_every_field(issuer_key: SigningKey, phone: SigningKey) -> None:
    code = present(_credential(issuer_key, phone), phone, now=NOW + 42)
    seen = inspect(code)
    assert seen.verified is False and seen.presented_at == NOW + 42
    assert seen.alg == int(issuer_key.alg) and seen.kid == issuer_key.kid and seen.compressed is False
    assert seen.message_bytes == len(b45decode(code[len(DEVICE_PREFIX) :]))
    assert seen.claims.code_type is CodeType.DEVICE and seen.claims.status_index == INDEX
    assert seen.claims.issuer == "?" and seen.claims.subject == SUBJECT


def test_credential_alone_is_not_a_code(issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing) -> None:
    """A stolen credential without the phone's key, shown as an ordinary code."""
    credential = _credential(issuer_key, phone)
    with pytest.raises(CodeClaimsError) as exc:
        verify("SM1:" + b45encode(credential), sh_ring, now=NOW)
    assert exc.value.reason is Reason.BAD_CLAIM
    assert exc.value.detail == "a device credential is valid only as its phone's presentation"
    with pytest.raises(CodeFormatError) as exc2:
        verify(DEVICE_PREFIX + b45encode(credential), sh_ring, now=NOW)  # no presentation headers
    assert exc2.value.reason is Reason.MALFORMED


def test_ordinary_code_dressed_as_a_presentation_is_refused(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing
) -> None:
    dynamic = mint(Claims.dynamic(SUBJECT, Status.GREEN, NOW), issuer_key)
    protected, _, payload, signature = cbor2.loads(b45decode(dynamic[4:])).value
    sig = phone.cose_key.sign(countersign_structure(protected, cbor2.dumps({6: NOW}), payload, signature))
    with pytest.raises(CodeClaimsError) as exc:
        verify(_rebuild([protected, {12: sig, 15: {6: NOW}}, payload, signature]), sh_ring, now=NOW)
    assert exc.value.reason is Reason.BAD_CLAIM and exc.value.detail == "not a device credential"


@pytest.mark.parametrize(
    ("unprotected", "detail"),
    [
        ({12: b"s" * 64}, "a presentation carries exactly a countersignature and a time"),
        ({12: b"s" * 64, 15: {6: NOW}, 4: b"kid!"}, "kid must be in the protected header only"),
        ({12: b"s" * 64, 15: {6: NOW}, 99: 1}, "a presentation carries exactly a countersignature and a time"),
        ({12: "text", 15: {6: NOW}}, "countersignature must be a byte string"),
        ({12: b"s" * 64, 15: {6: True}}, "presentation time must be {6: uint}"),
        ({12: b"s" * 64, 15: {6: NOW, 4: NOW}}, "presentation time must be {6: uint}"),
        ({12: b"s" * 64, 15: {6: -5}}, "presentation time out of range"),
    ],
)
def test_malformed_presentation_headers(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing, unprotected: dict[int, object], detail: str
) -> None:
    protected, _, payload, signature = _parts(present(_credential(issuer_key, phone), phone, now=NOW))
    with pytest.raises(CodeFormatError) as exc:
        verify(_rebuild([protected, unprotected, payload, signature]), sh_ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and exc.value.detail == detail


@pytest.mark.parametrize(
    ("cose_key", "detail"),
    [
        ({1: 1, -1: 6, -2: b"x" * 32, -4: b"d" * 32}, "private key"),  # the phone's private key sent along
        ({1: 1, -1: 4, -2: b"x" * 32}, "OKP/Ed25519 or EC2/P-256"),  # X25519 is not a signing curve
        ({1: 2, -1: 2, -2: b"x" * 32, -3: True}, "OKP/Ed25519 or EC2/P-256"),  # P-384
        ({1: 2, -1: 1, -2: b"\xff" * 32, -3: b"\xff" * 32}, "not on the curve"),
        ({1: 1, -1: 6, -2: b"x" * 31}, "32 bytes"),
        ({1: 2, -1: 1, -2: b"x" * 32}, "y must be"),
    ],
)
def test_unusable_device_key_in_the_credential(
    issuer_key: SigningKey, sh_ring: KeyRing, cose_key: dict[int, object], detail: str
) -> None:
    """A careless or rogue issuer signs a credential whose cnf key no phone could use."""
    claims = {2: SUBJECT, 6: NOW, 4: NOW + 3600, 8: {1: cose_key}, -65537: {0: 0, 1: 2, 4: 1}}
    protected, _, payload, signature = cbor2.loads(_cose.sign(cbor2.dumps(claims), issuer_key)).value
    code = _rebuild([protected, {12: b"s" * 64, 15: {6: NOW}}, payload, signature])
    with pytest.raises(CodeClaimsError) as exc:
        verify(code, sh_ring, now=NOW)
    assert exc.value.reason is Reason.BAD_CLAIM and detail in exc.value.detail


def test_jwk_as_webcrypto_exports_it() -> None:
    for alg in (Alg.EdDSA, Alg.ES256):
        key = DeviceKey.of(SigningKey.generate(alg))
        jwk = key.to_jwk()
        assert DeviceKey.from_jwk(json.loads(json.dumps(jwk))) == key
        assert set(jwk) == ({"kty", "crv", "x"} if alg is Alg.EdDSA else {"kty", "crv", "x", "y"})


@pytest.mark.parametrize(
    ("jwk", "detail"),
    [
        ({"kty": "OKP", "crv": "Ed25519", "x": "A" * 43, "d": "B" * 43}, "holds a private key"),
        ({"kty": "OKP", "crv": "X25519", "x": "A" * 43}, "OKP/Ed25519 or EC/P-256"),
        ({"kty": "EC", "crv": "P-384", "x": "A" * 64, "y": "A" * 64}, "OKP/Ed25519 or EC/P-256"),
        ({"kty": "EC", "crv": "secp256k1", "x": "A" * 43, "y": "A" * 43}, "OKP/Ed25519 or EC/P-256"),
        ({"kty": "EC", "crv": "P-256", "x": "_" * 43, "y": "_" * 43}, "not on the curve"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "32 bytes"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "A" * 5000}, "too long"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "!!!!"}, "not base64url"),
        ({"kty": "OKP", "crv": "Ed25519"}, "missing"),
        (["not", "an", "object"], "JWK object"),
    ],
)
def test_bad_jwk_refused(jwk: object, detail: str) -> None:
    with pytest.raises(UsageError) as exc:
        DeviceKey.from_jwk(jwk)  # type: ignore[arg-type]
    assert detail in exc.value.detail


def test_replay_digest_names_the_signed_presentation(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing
) -> None:
    credential = _credential(issuer_key, phone)
    first = verify(present(credential, phone, now=NOW + 10), sh_ring, now=NOW + 10)
    again = verify(present(credential, phone, now=NOW + 10), sh_ring, now=NOW + 10)  # ECDSA: another signature
    later = verify(present(credential, phone, now=NOW + 11), sh_ring, now=NOW + 11)
    assert first.digest == again.digest != later.digest
    expected = hashlib.sha256(b"".join(_digest_parts(present(credential, phone, now=NOW + 10)))).digest()
    assert first.digest == expected


def _digest_parts(code: str) -> list[bytes]:
    protected, _, payload, _ = _parts(code)
    assert isinstance(protected, bytes) and isinstance(payload, bytes)
    return [len(protected).to_bytes(4, "big"), protected, payload, cbor2.dumps({6: NOW + 10})]


def test_credential_text_roundtrip_and_inspect(issuer_key: SigningKey, phone: SigningKey) -> None:
    credential = _credential(issuer_key, phone, name="张小三", id_number="310101199001011234")
    text = credential_text(credential)
    assert read_credential(text) == credential and "=" not in text
    assert base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == credential
    i = inspect(present(credential, phone, now=NOW + 1))
    assert i.verified is False and i.presented_at == NOW + 1 and i.claims.masked_name == "张*三"
    with pytest.raises(UsageError, match="credential is not base64url text"):
        read_credential("not base64 !!")


def test_device_credential_lives_at_most_a_day(phone: SigningKey) -> None:
    with pytest.raises(UsageError, match="at most 86400"):
        Claims.device(SUBJECT, Status.GREEN, NOW, 1, DeviceKey.of(phone), ttl=86_401)
    with pytest.raises(UsageError, match="status-list index"):
        Claims("SH", SUBJECT, NOW, NOW + 60, Status.GREEN, CodeType.DEVICE, device_key=DeviceKey.of(phone)).checked()


def test_every_rejection_is_a_code_error(issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing) -> None:
    code = present(_credential(issuer_key, phone), phone, now=NOW)
    raw = bytearray(b45decode(code[len(DEVICE_PREFIX) :]))
    for i in range(0, len(raw), 7):
        tampered = bytearray(raw)
        tampered[i] ^= 0x20
        with pytest.raises(CodeError) as exc:
            verify(DEVICE_PREFIX + b45encode(bytes(tampered)), sh_ring, now=NOW)
        assert exc.value.reason in TAMPERED, (i, exc.value.reason)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**63 - 1))
@example(23)
@example(24)  # the first time that needs a byte after the head
@example(255)
@example(256)
@example(2**32)
def test_presentation_time_is_the_shortest_cbor_encoding(t: int) -> None:
    """The external AAD written by hand equals a general encoder's deterministic output."""
    assert _time_claims(t) == cbor2.dumps({6: t})


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_device_code_is_never_accepted(data: st.DataObject) -> None:
    message = bytearray(b45decode(DEVICE_CODE[len(DEVICE_PREFIX) :]))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(message) - 1))
        message[i] ^= 1 << data.draw(st.integers(0, 7))
    if bytes(message) == b45decode(DEVICE_CODE[len(DEVICE_PREFIX) :]):
        return  # two flips of one bit
    with pytest.raises(CodeError) as exc:
        verify(DEVICE_PREFIX + b45encode(bytes(message)), DEVICE_RING, now=NOW + 5)
    assert exc.value.reason in TAMPERED, exc.value.reason


_ISSUER, _PHONE = SigningKey.generate(), SigningKey.generate(Alg.ES256)
DEVICE_RING = KeyRing([TrustedKey(_ISSUER.public(), "SH")])
DEVICE_CODE = present(
    mint_credential(Claims.device(SUBJECT, Status.GREEN, NOW, 9, DeviceKey.of(_PHONE)), _ISSUER), _PHONE, now=NOW
)


def test_jwk_thumbprint_matches_rfc_7638_example() -> None:
    """RFC 8037 §A.3: the thumbprint of its Ed25519 example key."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert DeviceKey.from_jwk(jwk).thumbprint() == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    p256 = DeviceKey.of(SigningKey.generate(Alg.ES256))
    assert DeviceKey.from_cose(p256.to_cose()).thumbprint() == p256.thumbprint()  # compressed or not


def test_time_refusals_say_by_how_much(issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing) -> None:
    """Each time refusal names its reason and the offset a support desk needs (docs/format.md §4.2)."""

    def refusal(credential: bytes, presented: int, now: int) -> tuple[Reason, str]:
        with pytest.raises(CodeTimeError) as exc:
            verify(present(credential, phone, now=presented), sh_ring, now=now)
        return exc.value.reason, exc.value.detail

    cred = _credential(issuer_key, phone, ttl=3600)  # valid NOW .. NOW + 3600
    later = mint_credential(Claims.device(SUBJECT, Status.GREEN, NOW + 100, INDEX, DeviceKey.of(phone)), issuer_key)
    assert refusal(later, NOW + 100, NOW) == (Reason.NOT_YET_VALID, "credential issued 100 s in the future")
    assert refusal(cred, NOW + 100, NOW + 50) == (
        Reason.NOT_YET_VALID,
        "presented 50 s in the future: check the clocks",
    )
    assert refusal(cred, NOW - 11, NOW) == (
        Reason.NOT_YET_VALID,
        "presented before its credential was issued: check the phone's clock",
    )
    end = NOW + 3600
    # presented exactly at exp + skew: past the credential, although the verifier's clock is not yet
    assert refusal(cred, end + 10, end + 5) == (Reason.CREDENTIAL_EXPIRED, "credential expired 5 s ago")
    assert verify(present(cred, phone, now=end + 9), sh_ring, now=end + 5).presented_at == end + 9


def test_phone_side_refusals_name_the_problem(issuer_key: SigningKey, phone: SigningKey) -> None:
    credential = _credential(issuer_key, phone)
    with pytest.raises(UsageError) as exc:
        present(b"\x00", phone, now=NOW)
    assert exc.value.detail.startswith("not a device credential: ")
    presented = b45decode(present(credential, phone, now=NOW)[len(DEVICE_PREFIX) :])
    with pytest.raises(UsageError) as exc:
        present(presented, phone, now=NOW + 1)  # a presentation is not a credential
    assert exc.value.detail == "not a device credential: its unprotected header is not empty"
    with pytest.raises(UsageError) as exc:
        present(credential, SigningKey.generate(phone.alg), now=NOW)
    assert exc.value.detail == "this credential is bound to another device key"
    with pytest.raises(UsageError) as exc:
        mint_credential(Claims.dynamic(SUBJECT, Status.GREEN, NOW), issuer_key)
    assert exc.value.detail == "a device credential needs Claims.device(...)"


def test_credential_text_is_unpadded_base64url_within_a_size_cap() -> None:
    assert credential_text(b"\x00\x00\x17") == "AAAX" and credential_text(b"\xff") == "_w"
    largest = bytes(1024)  # MAX_CREDENTIAL_BYTES
    assert read_credential(credential_text(largest)) == largest
    assert read_credential("A" * 1368) == bytes(1026)  # the cap is on the text: 1024 * 4 // 3 + 4 characters
    with pytest.raises(UsageError) as exc:
        read_credential("A" * 1369)  # within the cap, but no base64url length
    assert exc.value.detail == "credential is not base64url text"
    with pytest.raises(UsageError) as exc:
        read_credential("A" * 1370)
    assert exc.value.detail == "credential text too long"
    assert read_credential("  " + credential_text(b"\x01\x02") + "\n") == b"\x01\x02"


@pytest.mark.parametrize(
    ("length", "reason"),
    [
        (0, Reason.MALFORMED),
        (1, Reason.BAD_DEVICE_SIGNATURE),
        (132, Reason.BAD_DEVICE_SIGNATURE),  # the largest signature the header admits
        (133, Reason.MALFORMED),
    ],
)
def test_countersignature_length_is_checked_before_the_signature(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing, length: int, reason: Reason
) -> None:
    protected, _, payload, signature = _parts(present(_credential(issuer_key, phone), phone, now=NOW))
    with pytest.raises(CodeError) as exc:
        verify(_rebuild([protected, {12: b"s" * length, 15: {6: NOW}}, payload, signature]), sh_ring, now=NOW)
    assert exc.value.reason is reason
    if reason is Reason.MALFORMED:
        assert exc.value.detail == "countersignature must be a byte string"


@pytest.mark.parametrize(
    ("presented", "reason", "detail"),
    [
        (0, Reason.NOT_YET_VALID, "presented before its credential was issued: check the phone's clock"),
        (2**63 - 1, Reason.NOT_YET_VALID, f"presented {2**63 - 1 - NOW} s in the future: check the clocks"),
        (2**63, Reason.MALFORMED, "presentation time out of range"),
        (2**64 - 1, Reason.MALFORMED, "presentation time out of range"),
    ],
)
def test_presentation_time_range_is_0_to_2_63(
    issuer_key: SigningKey, phone: SigningKey, sh_ring: KeyRing, presented: int, reason: Reason, detail: str
) -> None:
    """A time in range is a time problem, signed and all; beyond 2**63 - 1 the header is malformed."""
    with pytest.raises(CodeError) as exc:
        verify(present(_credential(issuer_key, phone), phone, now=presented), sh_ring, now=NOW)
    assert exc.value.reason is reason and exc.value.detail == detail


def test_phone_refuses_a_time_no_cbor_uint_holds(issuer_key: SigningKey, phone: SigningKey) -> None:
    with pytest.raises(UsageError) as exc:
        present(_credential(issuer_key, phone), phone, now=2**64)
    assert exc.value.detail == "presentation time out of range"
