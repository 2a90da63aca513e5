"""The current forms: per-code pseudonyms, implied iss and exp, slot credentials, and the window in which a
trust list lets the previous forms through (docs/format.md §4, §5 keys 8 and 9)."""

from __future__ import annotations

import pytest

from suishenma import (
    PSEUDONYM_BYTES,
    Claims,
    CodeClaimsError,
    CodeTimeError,
    DeviceKey,
    IssuerEntry,
    KeyRing,
    ListError,
    PseudonymKey,
    Reason,
    SigningKey,
    Status,
    UsageError,
    mint,
    mint_credential,
    parse_trust_list,
    present,
    sign_trust_list,
    verify,
)
from suishenma._base45 import b45decode
from suishenma.qr import qr_version
from tests.conftest import NOW, SUBJECT

SLOT = 6 * 3600


def entry(key: SigningKey, *, until: int | None = None, slot: int | None = SLOT) -> KeyRing:
    e = IssuerEntry(key.public(), "SH", NOW - 86400, NOW + 86400, previous_forms_until=until, slot=slot)
    return KeyRing([e.trusted_key()])


def test_pseudonyms_of_one_person_share_no_byte_position_and_open_with_the_key_only() -> None:
    key, other = PseudonymKey.generate(), PseudonymKey.generate()
    subs = [key.pseudonym(SUBJECT) for _ in range(200)]
    assert all(len(s) == PSEUDONYM_BYTES for s in subs) and len(set(subs)) == 200
    for s in subs:
        assert key.open(s)[0] == SUBJECT
        assert other.open(s)[0] != SUBJECT
    # no 4-byte string repeats between two pseudonyms of the same person (beyond chance: none in 200)
    grams = [{s[i : i + 4] for i in range(13)} for s in subs]
    assert sum(len(a & b) for n, a in enumerate(grams) for b in grams[n + 1 :]) == 0
    with pytest.raises(UsageError, match="16 bytes, not 8"):
        key.open(SUBJECT)
    with pytest.raises(UsageError, match="8-byte subject id"):
        key.pseudonym(b"short")
    with pytest.raises(UsageError, match="32 bytes"):
        PseudonymKey(bytes(16))


def test_current_dynamic_code_leaves_iss_and_exp_out_and_stays_in_qr_version_7(ed_key: SigningKey) -> None:
    sub = PseudonymKey.generate().pseudonym(SUBJECT)
    code = mint(Claims.dynamic(sub, Status.GREEN, NOW), ed_key)
    assert qr_version(code, "M") <= 7 and len(code) == 175
    v = verify(code, entry(ed_key), now=NOW + 30)
    assert v.claims.issuer == "SH" and v.claims.implied and v.expires_at == NOW + 60 and v.claims.subject == sub
    with pytest.raises(CodeTimeError) as exc:
        verify(code, entry(ed_key), now=NOW + 60 + 10)
    assert exc.value.reason is Reason.EXPIRED
    assert len(b45decode(code[4:])) == 114


def test_previous_forms_pass_within_the_window_and_are_refused_after(ed_key: SigningKey) -> None:
    previous = mint(Claims.dynamic(SUBJECT, Status.GREEN, NOW, ttl=60), ed_key)
    current = mint(Claims.dynamic(bytes(16), Status.GREEN, NOW), ed_key)
    # an entry that states no window: the issuer has not switched, both forms pass
    assert verify(previous, entry(ed_key, until=None), now=NOW).claims.implied is False
    assert verify(previous, entry(ed_key, until=NOW), now=NOW).claims.subject == SUBJECT
    with pytest.raises(CodeClaimsError) as exc:
        verify(previous, entry(ed_key, until=NOW - 1), now=NOW)
    assert exc.value.reason is Reason.PREVIOUS_FORM and "ended at" in exc.value.detail
    assert verify(current, entry(ed_key, until=NOW - 1), now=NOW).claims.implied
    # paper codes keep their form: static by nature
    paper = mint(Claims.offline(SUBJECT, Status.GREEN, NOW, 5), ed_key)
    assert verify(paper, entry(ed_key, until=NOW - 1), now=NOW).claims.status_index == 5


def test_slot_credential_lives_the_slot_its_key_entry_states(ed_key: SigningKey) -> None:
    phone = SigningKey.generate()
    start = NOW - NOW % SLOT
    claims = Claims.device(bytes(16), Status.GREEN, start, 9, DeviceKey.of(phone), slot=SLOT)
    credential = mint_credential(claims, ed_key)
    code = present(credential, phone, now=start + 100)
    assert qr_version(code, "M") <= 11
    v = verify(code, entry(ed_key, until=start), now=start + 100)
    assert v.claims.expires_at == start + SLOT and v.claims.implied
    with pytest.raises(CodeTimeError) as exc:
        verify(present(credential, phone, now=start + SLOT + 20), entry(ed_key), now=start + SLOT + 20)
    assert exc.value.reason is Reason.CREDENTIAL_EXPIRED
    # a slot credential before its slot: not valid yet (a batch cannot be spent at once)
    later = mint_credential(
        Claims.device(bytes(16), Status.GREEN, start + SLOT, 10, DeviceKey.of(phone), slot=SLOT), ed_key
    )
    with pytest.raises(CodeTimeError) as exc:
        verify(present(later, phone, now=start + 100), entry(ed_key), now=start + 100)
    assert exc.value.reason is Reason.NOT_YET_VALID
    # a key whose entry states no slot cannot imply the credential's expiry
    with pytest.raises(CodeClaimsError) as exc:
        verify(code, entry(ed_key, slot=None), now=start + 100)
    assert exc.value.reason is Reason.MISSING_CLAIM and "exp" in exc.value.detail
    # a previous-form day credential after the window
    day = mint_credential(Claims.device(SUBJECT, Status.GREEN, start, 11, DeviceKey.of(phone)), ed_key)
    with pytest.raises(CodeClaimsError) as exc:
        verify(present(day, phone, now=start + 100), entry(ed_key, until=start), now=start + 100)
    assert exc.value.reason is Reason.PREVIOUS_FORM


@pytest.mark.parametrize("slot", [59, 7 * 3600, 7000, 0])
def test_trust_list_refuses_a_slot_that_is_not_a_divisor_of_a_day_up_to_6_hours(slot: int, ed_key: SigningKey) -> None:
    root = SigningKey.generate()
    e = IssuerEntry(ed_key.public(), "SH", NOW, NOW + 100, slot=slot)
    body = sign_trust_list([e], root, version=1, now=NOW, ttl=3600)
    with pytest.raises(ListError) as exc:
        parse_trust_list(body, root.public(), now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED and "slot" in exc.value.detail


def test_trust_list_carries_the_window_and_the_slot(ed_key: SigningKey) -> None:
    root = SigningKey.generate()
    e = IssuerEntry(ed_key.public(), "SH", NOW, NOW + 100, previous_forms_until=NOW + 86400, slot=10800)
    parsed = parse_trust_list(sign_trust_list([e], root, version=1, now=NOW, ttl=3600), root.public(), now=NOW)
    key = parsed.keyring[ed_key.kid]
    assert (key.previous_forms_until, key.slot) == (NOW + 86400, 10800)
