"""Trust lists and status lists: rollback, freeze, wrong signer, tampering, caps, lookups."""

from __future__ import annotations

import zlib

import cbor2
import pytest

from suishenma import (
    CodeType,
    EntryStatus,
    IssuerEntry,
    ListError,
    Reason,
    SigningKey,
    StatusList,
    UsageError,
    parse_status_list,
    parse_trust_list,
    sign_status_list,
    sign_trust_list,
)
from suishenma.labels import STATUS_LIST_TYP, TRUST_LIST_TYP
from tests.conftest import NOW
from tests.suishenma import forge

DAY = 86400


@pytest.fixture(scope="module")
def root() -> SigningKey:
    return SigningKey.generate()


def _trust(root: SigningKey, issuer: SigningKey, version: int = 1, now: int = NOW) -> bytes:
    entry = IssuerEntry(issuer.public(), "SH", now - DAY, now + 365 * DAY, status_uri="/v1/status-lists/SH")
    return sign_trust_list([entry], root, version=version, now=now, ttl=7 * DAY)


def test_trust_list_roundtrip(root: SigningKey, ed_key: SigningKey) -> None:
    tl = parse_trust_list(_trust(root, ed_key, 3), root.public(), now=NOW)
    assert tl.version == 3 and tl.issuer_ids() == ["SH"]
    assert tl.keyring[ed_key.kid].status_uri == "/v1/status-lists/SH"
    assert tl.keys_for("SH") == {ed_key.kid: tl.issuers[0].key}


def test_trust_list_rollback_rejected(root: SigningKey, ed_key: SigningKey) -> None:
    tl = parse_trust_list(_trust(root, ed_key, 2), root.public(), now=NOW)
    tl.check_newer(2)
    with pytest.raises(ListError) as exc:
        tl.check_newer(3)
    assert exc.value.reason is Reason.LIST_ROLLBACK


def test_trust_list_freeze_rejected(root: SigningKey, ed_key: SigningKey) -> None:
    data = _trust(root, ed_key)
    with pytest.raises(ListError) as exc:
        parse_trust_list(data, root.public(), now=NOW + 7 * DAY)
    assert exc.value.reason is Reason.LIST_EXPIRED


def test_trust_list_wrong_root_rejected(root: SigningKey, ed_key: SigningKey) -> None:
    with pytest.raises(ListError) as exc:
        parse_trust_list(_trust(ed_key, ed_key), root.public(), now=NOW)
    assert exc.value.reason is Reason.LIST_WRONG_SIGNER


def test_trust_list_tampered_rejected(root: SigningKey, ed_key: SigningKey) -> None:
    data = _trust(root, ed_key)
    for i in range(0, len(data), 3):
        tampered = bytearray(data)
        tampered[i] ^= 0x10
        with pytest.raises(ListError) as exc:
            parse_trust_list(bytes(tampered), root.public(), now=NOW)
        assert exc.value.reason in (Reason.LIST_MALFORMED, Reason.LIST_WRONG_SIGNER), (i, exc.value.reason)


def test_trust_list_duplicate_kids_refused(root: SigningKey, ed_key: SigningKey) -> None:
    e = IssuerEntry(ed_key.public(), "SH", NOW, NOW + DAY)
    with pytest.raises(UsageError, match=f"duplicate kid {ed_key.kid.hex()}"):
        sign_trust_list([e, e], root, version=1, now=NOW, ttl=DAY)


def test_status_list_token_is_not_a_trust_list(root: SigningKey) -> None:
    token = sign_status_list(StatusList(8), root, uri="u", issuer="SH", version=1, now=NOW, valid_for=DAY, ttl=60)
    with pytest.raises(ListError) as exc:
        parse_trust_list(token, root.public(), now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED


@pytest.mark.parametrize("bits", [1, 2])
def test_status_list_set_get_roundtrip(ed_key: SigningKey, bits: int) -> None:
    lst = StatusList(10_001, bits)
    lst.set_many([0, 7, 8, 10_000], EntryStatus.INVALID)
    if bits == 2:
        lst.set(5, EntryStatus.SUSPENDED)
    token = sign_status_list(lst, ed_key, uri="/s", issuer="SH", version=4, now=NOW, valid_for=DAY, ttl=300)
    sl = parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    assert (sl.version, sl.size, sl.bits, sl.ttl) == (4, 10_001, bits, 300)
    for i in range(10_001):
        assert sl.status(i) == lst.get(i)
    assert sl.status(7) is EntryStatus.INVALID and sl.status(6) is EntryStatus.VALID
    assert sl.status(10_001) is EntryStatus.INVALID  # beyond the list: never vouched for
    with pytest.raises(IndexError, match=r"^10001$"):
        sl.value(10_001)  # its bit is in the last byte, but no entry has it
    with pytest.raises(IndexError, match=r"^-1$"):
        sl.value(-1)
    lst.set(7, EntryStatus.VALID)
    assert lst.get(7) is EntryStatus.VALID and lst.get(8) is EntryStatus.INVALID


def test_status_list_bit_order_follows_the_draft() -> None:
    lst = StatusList(16, 1)
    lst.set(0, EntryStatus.INVALID)
    lst.set(9, EntryStatus.INVALID)
    assert bytes(lst.data) == b"\x01\x02"  # index 0 is the least significant bit of byte 0
    two = StatusList(4, 2)
    two.set(1, EntryStatus.SUSPENDED)
    assert bytes(two.data) == b"\x08"


def test_status_list_limits() -> None:
    with pytest.raises(UsageError, match="1 to 268435456 entries"):
        StatusList(0)
    with pytest.raises(UsageError, match="status lists have 1 or 2 bits"):
        StatusList(8, bits=4)
    with pytest.raises(UsageError, match="needs 2 bits"):
        StatusList(8).set(1, EntryStatus.SUSPENDED)
    with pytest.raises(IndexError, match=r"^8$"):
        StatusList(8).get(8)
    with pytest.raises(IndexError, match=r"^5$"):
        StatusList(5).set(5, EntryStatus.INVALID)  # the bit exists in the last byte, the entry does not
    with pytest.raises(IndexError, match=r"^-1$"):
        StatusList(5).set(-1, EntryStatus.INVALID)


def test_status_list_rollback_and_freeze(ed_key: SigningKey) -> None:
    token = sign_status_list(StatusList(8), ed_key, uri="u", issuer="SH", version=5, now=NOW, valid_for=DAY, ttl=60)
    sl = parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    with pytest.raises(ListError) as exc:
        sl.check_newer(6)
    assert exc.value.reason is Reason.LIST_ROLLBACK
    with pytest.raises(ListError) as exc:
        parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW + DAY)
    assert exc.value.reason is Reason.LIST_EXPIRED


def test_status_list_mix_and_match_signer_rejected(ed_key: SigningKey) -> None:
    other = SigningKey.generate()
    token = sign_status_list(StatusList(8), other, uri="u", issuer="SH", version=1, now=NOW, valid_for=DAY, ttl=60)
    with pytest.raises(ListError) as exc:
        parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    assert exc.value.reason is Reason.LIST_WRONG_SIGNER


def _status_token(key: SigningKey, bits: int, lst: bytes, size: int) -> bytes:
    claims = {
        1: "SH",
        2: "u",
        6: NOW,
        4: NOW + DAY,
        65534: 60,
        65533: {"bits": bits, "lst": lst},
        -65537: {10: 1, 12: size},
    }
    return forge.sign1(cbor2.dumps(claims), key, protected={1: -8, 4: key.kid, 16: STATUS_LIST_TYP})


def test_status_list_declared_size_must_match_data(ed_key: SigningKey) -> None:
    keys = {ed_key.kid: ed_key.public()}
    parse_status_list(_status_token(ed_key, 1, zlib.compress(bytes(2)), 16), keys, now=NOW)
    for lst, size in ((zlib.compress(bytes(3)), 16), (zlib.compress(bytes(1)), 16), (b"garbage", 16)):
        with pytest.raises(ListError) as exc:
            parse_status_list(_status_token(ed_key, 1, lst, size), keys, now=NOW)
        assert exc.value.reason is Reason.LIST_MALFORMED


def test_status_list_bomb_capped_at_declared_size(ed_key: SigningKey) -> None:
    bomb = zlib.compress(bytes(200 * 1024 * 1024), 9)  # 200 MiB of zeros declared as 16 entries
    with pytest.raises(ListError) as exc:
        parse_status_list(_status_token(ed_key, 1, bomb, 16), {ed_key.kid: ed_key.public()}, now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED
    assert exc.value.detail == "list does not decompress to its declared size"


def test_status_list_bits_and_size_validated(ed_key: SigningKey) -> None:
    keys = {ed_key.kid: ed_key.public()}
    out_of_range = "bits must be 1, 2, 4 or 8, size within limits"
    for bits, size, detail in (
        (3, 16, out_of_range),
        (1, 0, out_of_range),
        (1, 2**40, out_of_range),
        (True, 16, "field 'bits' has the wrong type"),
    ):
        with pytest.raises(ListError) as exc:
            parse_status_list(_status_token(ed_key, bits, zlib.compress(bytes(2)), size), keys, now=NOW)
        assert exc.value.reason is Reason.LIST_MALFORMED and exc.value.detail == detail, (bits, size)


def test_unknown_code_types_in_a_trust_list_are_ignored_not_fatal(ed_key: SigningKey) -> None:
    """A later version lists a code type this one does not know: the kiosk keeps syncing."""
    entry = IssuerEntry(ed_key.public(), "SH", NOW - 10, NOW + 10, frozenset({CodeType.DYNAMIC})).to_cbor()
    entry[6] = [0, 9]
    claims = {1: "root", 6: NOW, 4: NOW + 60, -65537: {10: 1, 11: [entry]}}
    token = forge.sign1(cbor2.dumps(claims), ed_key, protected={1: -8, 4: ed_key.kid, 16: TRUST_LIST_TYP})
    tl = parse_trust_list(token, ed_key.public(), now=NOW)
    assert tl.issuers[0].code_types == frozenset({CodeType.DYNAMIC})
    entry[6] = [0, "device"]
    token = forge.sign1(cbor2.dumps(claims), ed_key, protected={1: -8, 4: ed_key.kid, 16: TRUST_LIST_TYP})
    with pytest.raises(ListError) as exc:
        parse_trust_list(token, ed_key.public(), now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED and "not an integer" in exc.value.detail
