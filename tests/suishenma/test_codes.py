"""Minting and verifying codes: round trips, sizes, and every rejection with its reason."""

from __future__ import annotations

import zlib
from dataclasses import replace

import cbor2
import pytest

from suishenma import (
    Claims,
    CodeClaimsError,
    CodeError,
    CodeFormatError,
    CodeSignatureError,
    CodeTimeError,
    CodeType,
    IssuerEntry,
    KeyRing,
    Reason,
    SigningKey,
    Status,
    TrustedKey,
    UsageError,
    inspect,
    mask_name,
    mint,
    verify,
)
from suishenma._base45 import ALPHABET, b45decode, b45encode
from suishenma.qr import qr_version
from tests.conftest import NOW, SUBJECT
from tests.suishenma import forge

# What a damaged or forged code is refused for before its signature is checked.
STRUCTURE_OR_KEY = {Reason.MALFORMED, Reason.UNTAGGED, Reason.UNKNOWN_KID, Reason.ALG_MISMATCH}


def test_roundtrip_dynamic(ed_key: SigningKey, ring: KeyRing, green_claims: Claims) -> None:
    code = mint(green_claims, ed_key)
    assert code.startswith("SM1:")
    v = verify(code, ring, now=NOW + 30)
    assert v.claims == green_claims
    assert v.kid == ed_key.kid


def test_roundtrip_es256_and_offline(es_key: SigningKey, ring: KeyRing) -> None:
    claims = Claims.offline(SUBJECT, Status.YELLOW, NOW, 123_456, name="王小明", id_number="310101199001011234")
    v = verify(mint(claims, es_key), ring, now=NOW + 86400)
    assert v.claims.code_type is CodeType.OFFLINE
    assert v.claims.status_index == 123_456
    assert v.claims.masked_name == "王*明"
    assert v.claims.masked_id == "3101**********1234"


def test_dynamic_code_fits_qr_version_7_at_ecc_m(ed_key: SigningKey) -> None:
    code = mint(Claims.dynamic(SUBJECT, Status.RED, NOW), ed_key)
    assert qr_version(code, "M") <= 7


def test_hospital_code_fits_qr_version_9(ed_key: SigningKey) -> None:
    claims = Claims.dynamic(SUBJECT, Status.GREEN, NOW, name="欧阳小三", id_number="31010119900101123X")
    assert qr_version(mint(claims, ed_key), "M") <= 9


def test_identity_is_masked_before_it_enters_the_code(ed_key: SigningKey) -> None:
    code = mint(Claims.dynamic(SUBJECT, Status.GREEN, NOW, name="张小三", id_number="310101199001011234"), ed_key)
    raw = b45decode(code[4:])
    assert "小".encode() not in raw and b"19900101" not in raw


def test_compressed_code_is_accepted(ed_key: SigningKey, ring: KeyRing, green_claims: Claims) -> None:
    message = b45decode(mint(green_claims, ed_key)[4:])
    assert verify("SM1:" + b45encode(zlib.compress(message)), ring, now=NOW).claims == green_claims


def test_code_never_uses_zlib_when_it_would_be_longer(ed_key: SigningKey, green_claims: Claims) -> None:
    message = b45decode(mint(green_claims, ed_key)[4:])
    assert message[0] == 0xD2 and len(zlib.compress(message, 9)) >= len(message)


def test_every_flipped_byte_is_rejected(ed_key: SigningKey, ring: KeyRing, green_claims: Claims) -> None:
    """A flip in the signed payload or the signature breaks the signature; one in the framing or the
    protected header is refused by the structure or key checks, and none reaches the claims checks."""
    message = b45decode(mint(green_claims, ed_key)[4:])
    payload = cbor2.loads(message).value[2]
    signed = range(message.rindex(payload), message.rindex(payload) + len(payload))
    signature = range(len(message) - 64, len(message))
    for i in range(len(message)):
        for bit in (0x01, 0x80):
            tampered = bytearray(message)
            tampered[i] ^= bit
            with pytest.raises(CodeError) as exc:
                verify(forge.text(bytes(tampered)), ring, now=NOW)
            if i in signed or i in signature:
                assert exc.value.reason is Reason.BAD_SIGNATURE, (i, bit)
            else:
                assert exc.value.reason in STRUCTURE_OR_KEY, (i, bit, exc.value.reason)


def _truncation_reason(text: str) -> Reason:
    """Why ``text``, a prefix of a valid code, is refused: the prefix, the Base45 or the cut CBOR."""
    if len(text) < len("SM1:"):
        return Reason.WRONG_PREFIX
    body = text[len("SM1:") :]
    if not body:
        return Reason.MALFORMED  # empty code
    if len(body) % 3 == 1:
        return Reason.BAD_ENCODING  # no Base45 text is 3k+1 characters long
    if len(body) % 3 == 2 and ALPHABET.index(body[-2]) + 45 * ALPHABET.index(body[-1]) > 255:
        return Reason.BAD_ENCODING  # a final pair that is no single byte
    return Reason.MALFORMED  # the COSE_Sign1 is cut short


def test_every_truncation_is_rejected(ed_key: SigningKey, ring: KeyRing, green_claims: Claims) -> None:
    code = mint(green_claims, ed_key)
    for n in range(len(code)):
        with pytest.raises(CodeFormatError) as exc:
            verify(code[:n], ring, now=NOW)
        assert exc.value.reason is _truncation_reason(code[:n]), n


def test_wrong_key_is_unknown_kid(ed_key: SigningKey, green_claims: Claims) -> None:
    other = KeyRing.of(SigningKey.generate().public(), issuer="SH")
    with pytest.raises(CodeSignatureError) as exc:
        verify(mint(green_claims, ed_key), other, now=NOW)
    assert exc.value.reason is Reason.UNKNOWN_KID


def test_same_kid_different_key_is_bad_signature(ed_key: SigningKey, green_claims: Claims) -> None:
    impostor = SigningKey.generate()
    ring = KeyRing(
        [TrustedKey(type(ed_key.public()).from_public_key(impostor.private_key.public_key(), kid=ed_key.kid))]
    )
    with pytest.raises(CodeSignatureError) as exc:
        verify(mint(green_claims, ed_key), ring, now=NOW)
    assert exc.value.reason is Reason.BAD_SIGNATURE


def test_algorithm_confusion_rejected(ed_key: SigningKey, ring: KeyRing) -> None:
    # Header claims ES256 while the kid names an EdDSA key.
    msg = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, protected={1: -7, 4: ed_key.kid})
    with pytest.raises(CodeSignatureError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.ALG_MISMATCH


def test_expired_and_not_yet_valid(ed_key: SigningKey, ring: KeyRing, green_claims: Claims) -> None:
    code = mint(green_claims, ed_key)
    verify(code, ring, now=NOW + 60 + 9)  # inside the 10 s skew allowance
    with pytest.raises(CodeTimeError) as exc:
        verify(code, ring, now=NOW + 60 + 10)
    assert exc.value.reason is Reason.EXPIRED
    verify(code, ring, now=NOW - 10)
    with pytest.raises(CodeTimeError) as exc:
        verify(code, ring, now=NOW - 11)
    assert exc.value.reason is Reason.NOT_YET_VALID
    with pytest.raises(CodeTimeError) as exc:
        verify(code, ring, now=NOW + 65, skew=0)
    assert exc.value.reason is Reason.EXPIRED


def test_untagged_cose_rejected(ed_key: SigningKey, ring: KeyRing) -> None:
    msg = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, tag=None)
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.UNTAGGED


def test_other_cose_tag_rejected(ed_key: SigningKey, ring: KeyRing) -> None:
    msg = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, tag=98)
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.UNTAGGED


@pytest.mark.parametrize("payload", [[1, 2, 3], "text", 7, b"bytes"])
def test_payload_that_is_not_a_map_rejected(ed_key: SigningKey, ring: KeyRing, payload: object) -> None:
    msg = forge.sign1(cbor2.dumps(payload), ed_key)
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.PAYLOAD_NOT_MAP


def test_kid_in_unprotected_header_rejected(ed_key: SigningKey, ring: KeyRing) -> None:
    msg = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, protected={1: -8}, unprotected={4: ed_key.kid})
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED


def test_alg_in_unprotected_header_rejected(ed_key: SigningKey, ring: KeyRing) -> None:
    # The protected header is complete and the signature valid: only the unprotected alg is wrong.
    msg = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, unprotected={1: -8})
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED
    assert "algorithm must not be in the unprotected header" in exc.value.detail


def test_detached_payload_rejected(ed_key: SigningKey, ring: KeyRing) -> None:
    msg = bytearray(forge.sign1(cbor2.dumps(forge.claims_map()), ed_key))
    tag = cbor2.loads(bytes(msg))
    tag.value[2] = None
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(cbor2.dumps(tag)), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED


def test_wrong_prefix_rejected(ed_key: SigningKey, ring: KeyRing, green_claims: Claims) -> None:
    code = mint(green_claims, ed_key)
    for bad in ("HC1:" + code[4:], "SM2:" + code[4:], code[4:], "sm1:" + code[4:]):
        with pytest.raises(CodeFormatError) as exc:
            verify(bad, ring, now=NOW)
        assert exc.value.reason is Reason.WRONG_PREFIX


@pytest.mark.parametrize("body", ["abc", "A", "GGW", "::::", "ÄÖÜ", "AB\x00"])
def test_bad_base45_rejected(ring: KeyRing, body: str) -> None:
    with pytest.raises(CodeFormatError) as exc:
        verify("SM1:" + body, ring, now=NOW)
    assert exc.value.reason is Reason.BAD_ENCODING


def test_zlib_bomb_rejected_without_inflating_it(ring: KeyRing) -> None:
    bomb = zlib.compress(b"\xd2" + b"\0" * (4 * 16_384), 9)  # four times the 16 KiB cap
    with pytest.raises(CodeFormatError) as exc:
        verify("SM1:" + b45encode(bomb), ring, now=NOW)
    assert exc.value.reason is Reason.TOO_LARGE


def test_corrupt_zlib_rejected(ring: KeyRing) -> None:
    with pytest.raises(CodeFormatError) as exc:
        verify("SM1:" + b45encode(b"\x78\x9c\xff\xff\xff"), ring, now=NOW)
    assert exc.value.reason is Reason.BAD_COMPRESSION


def test_oversized_text_rejected_before_decoding(ring: KeyRing) -> None:
    with pytest.raises(CodeFormatError) as exc:
        verify("SM1:" + "0" * 4296, ring, now=NOW)  # 4300 characters: 4 over the cap
    assert exc.value.reason is Reason.TOO_LARGE


@pytest.mark.parametrize("where", ["unprotected", "claims"])
def test_deeply_nested_cbor_rejected(where: str, ed_key: SigningKey, ring: KeyRing) -> None:
    # 20 levels: far inside every size cap, so only the depth guard can stop it. Without the guard
    # the claims case would verify (unknown claims are ignored).
    deep: object = 0
    for _ in range(20):
        deep = [deep]
    if where == "unprotected":
        message = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, unprotected={-1: deep})
    else:
        message = forge.sign1(cbor2.dumps(forge.claims_map(k99=deep)), ed_key)
    assert len(forge.text(message)) < 300
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(message), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and "nested too deeply" in exc.value.detail


def test_missing_and_mistyped_claims_rejected(ed_key: SigningKey, ring: KeyRing) -> None:
    cases = [
        # a dynamic code may leave exp implied, a paper code may not
        (
            {k: v for k, v in forge.claims_map(**{"k-65537": {0: 0, 1: 1, 4: 7}}).items() if k != 4},
            Reason.MISSING_CLAIM,
            "exp: only dynamic codes and slot credentials imply it",
        ),
        ({k: v for k, v in forge.claims_map().items() if k != 6}, Reason.MISSING_CLAIM, "claim 6"),
        (forge.claims_map(k4="60"), Reason.BAD_CLAIM, "claim 4 must be int"),
        (forge.claims_map(k1=5), Reason.BAD_CLAIM, "claim 1 must be str"),
        (forge.claims_map(k6=True), Reason.BAD_CLAIM, "claim 6 must be int"),
        (forge.claims_map(k2="not bytes"), Reason.BAD_CLAIM, "claim 2 must be bytes"),
        (forge.claims_map(**{"k-65537": {0: 9}}), Reason.BAD_CLAIM, "unknown status"),
        # offline without a status index
        (forge.claims_map(**{"k-65537": {0: 0, 1: 1}}), Reason.BAD_CLAIM, "carry a status-list index"),
        # expires before it was issued
        (forge.claims_map(k4=1_789_999_999), Reason.BAD_CLAIM, "expiry must come after issue time"),
    ]
    for m, reason, detail in cases:
        with pytest.raises(CodeClaimsError) as exc:
            verify(forge.text(forge.sign1(cbor2.dumps(m), ed_key)), ring, now=NOW)
        assert exc.value.reason is reason and detail in exc.value.detail, m


def test_key_limits_issuer_type_and_validity(ed_key: SigningKey, green_claims: Claims) -> None:
    code = mint(green_claims, ed_key)
    entry = IssuerEntry(ed_key.public(), "ZJ", NOW - 100, NOW + 100)
    # a current-form code names no issuer: it is its key's
    assert verify(code, KeyRing([entry.trusted_key()]), now=NOW).claims.issuer == "ZJ"
    previous = mint(Claims.dynamic(SUBJECT, Status.GREEN, NOW, ttl=60), ed_key)  # says iss "SH"
    with pytest.raises(CodeClaimsError) as exc:
        verify(previous, KeyRing([entry.trusted_key()]), now=NOW)
    assert exc.value.reason is Reason.ISSUER_MISMATCH
    entry = IssuerEntry(ed_key.public(), "SH", NOW - 100, NOW + 100, frozenset({CodeType.OFFLINE}))
    with pytest.raises(CodeClaimsError) as exc:
        verify(code, KeyRing([entry.trusted_key()]), now=NOW)
    assert exc.value.reason is Reason.TYPE_NOT_ALLOWED
    entry = IssuerEntry(ed_key.public(), "SH", NOW + 1, NOW + 100)
    with pytest.raises(CodeClaimsError) as exc:
        verify(code, KeyRing([entry.trusted_key()]), now=NOW)
    assert exc.value.reason is Reason.KEY_NOT_VALID


def test_inspect_says_nothing_was_verified(ed_key: SigningKey, green_claims: Claims) -> None:
    text = mint(green_claims, ed_key)
    i = inspect(text)
    assert i.verified is False
    # a current-form code leaves iss to its key, which inspect does not know
    assert i.claims == replace(green_claims, issuer="?") and i.kid == ed_key.kid
    assert i.alg == int(ed_key.alg) and i.presented_at is None
    assert i.compressed is False and i.message_bytes == len(b45decode(text[4:]))


def test_inspect_tells_a_compressed_code(ed_key: SigningKey, green_claims: Claims) -> None:
    import zlib

    raw = b45decode(mint(green_claims, ed_key)[4:])
    packed = "SM1:" + b45encode(zlib.compress(raw, 9))
    i = inspect(packed)
    assert i.compressed is True and i.message_bytes == len(raw) and i.claims == replace(green_claims, issuer="?")


@pytest.mark.parametrize("bad", ["\u202e", "\x00", "\n", "\x1b[2J", "\u2028", "\u200f"])
def test_signed_name_with_control_or_bidi_character_is_bad_claim(bad: str, ed_key: SigningKey, ring: KeyRing) -> None:
    """A rogue or careless issuer signs a name that would reorder or clear a kiosk's screen."""
    with pytest.raises(UsageError, match=f"U\\+{ord(bad[0]):04X}"):
        Claims.dynamic(SUBJECT, Status.GREEN, NOW, name="张" + bad + "三")
    msg = forge.sign1(cbor2.dumps(forge.claims_map(**{"k-65537": {0: 0, 2: "张" + bad + "*"}})), ed_key)
    with pytest.raises(CodeClaimsError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.BAD_CLAIM and "masked name contains the unprintable" in exc.value.detail
    msg = forge.sign1(cbor2.dumps(forge.claims_map(k1="S" + bad)), ed_key)
    with pytest.raises(CodeClaimsError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.BAD_CLAIM and "issuer contains the unprintable" in exc.value.detail


def test_names_with_middle_dot_and_ideographic_space_are_fine() -> None:
    assert mask_name("阿依古丽·买买提") == "阿*提"
    assert Claims.dynamic(SUBJECT, Status.GREEN, NOW, name="欧阳\u3000娜娜").masked_name == "欧*娜"


def test_claims_out_of_range_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="subject must have 1 to 32 bytes"):
        Claims.dynamic(b"", Status.GREEN, NOW)
    with pytest.raises(UsageError, match="expiry must come after issue time"):
        Claims.dynamic(SUBJECT, Status.GREEN, NOW, ttl=0)
    with pytest.raises(UsageError, match="status index out of range"):
        Claims.offline(SUBJECT, Status.GREEN, NOW, -1)
    with pytest.raises(UsageError, match="issuer must have 1 to 16 characters"):
        Claims.dynamic(SUBJECT, Status.GREEN, NOW, issuer="X" * 17)


def test_digest_names_the_signed_content_not_its_text(ed_key: SigningKey, ring: KeyRing, green_claims: Claims) -> None:
    code = mint(green_claims, ed_key)
    raw = b45decode(code[4:])
    zipped = "SM1:" + b45encode(zlib.compress(raw, 9))
    assert zipped != code
    assert verify(zipped, ring, now=NOW).digest == verify(code, ring, now=NOW).digest
    other = mint(Claims.dynamic(SUBJECT, Status.GREEN, NOW + 1), ed_key)
    assert verify(other, ring, now=NOW + 1).digest != verify(code, ring, now=NOW).digest


def test_inspect_shows_none_for_what_it_cannot_read(ed_key: SigningKey) -> None:
    """Undecodable claims and a presentation time that is not an integer are shown as absent."""
    i = inspect(forge.text(forge.sign1(cbor2.dumps([1, 2]), ed_key)))
    assert i.claims is None and i.verified is False and i.kid == ed_key.kid
    odd_time = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, unprotected={15: {6: "later"}})
    assert inspect(forge.text(odd_time)).presented_at is None
    no_time = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, unprotected={15: [6, NOW]})
    assert inspect(forge.text(no_time)).presented_at is None
    timed = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, unprotected={15: {6: NOW + 7}})
    assert inspect(forge.text(timed)).presented_at == NOW + 7


def test_time_refusals_say_by_how_much(ed_key: SigningKey, ring: KeyRing, green_claims: Claims) -> None:
    code = mint(green_claims, ed_key)  # issued NOW, expires NOW + 60
    with pytest.raises(CodeTimeError) as exc:
        verify(code, ring, now=NOW - 25)
    assert exc.value.reason is Reason.NOT_YET_VALID and exc.value.detail == "issued 25 s in the future"
    with pytest.raises(CodeTimeError) as exc:
        verify(code, ring, now=NOW + 60 + 30)
    assert exc.value.reason is Reason.EXPIRED and exc.value.detail == "expired 30 s ago"


def test_verified_code_names_the_trusted_key_that_signed_it(ed_key: SigningKey, green_claims: Claims) -> None:
    trusted = TrustedKey(ed_key.public(), "SH", code_types=frozenset({CodeType.DYNAMIC}))
    v = verify(mint(green_claims, ed_key), KeyRing([trusted]), now=NOW)
    assert v.trusted is trusted and v.alg is ed_key.alg and v.kid == ed_key.kid
