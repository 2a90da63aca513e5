"""Trust and status lists, exactly: each refusal's reason and detail, each boundary, each signed claim.

The broader behaviour (rollback, freeze, tampering) is in test_lists.py; these pin what an operator
reads when a list is refused and what a signer writes, so a changed limit or message is noticed.
"""

from __future__ import annotations

import tracemalloc
import zlib
from typing import Any

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
from suishenma.statuslist import list_digest
from tests.conftest import NOW
from tests.suishenma import forge

DAY = 86400


def _trust_token(root: SigningKey, entries: list[Any]) -> bytes:
    body = {1: "root", 6: NOW, 4: NOW + 60, -65537: {10: 1, 11: entries}}
    return forge.sign1(cbor2.dumps(body), root, protected={1: -8, 4: root.kid, 16: TRUST_LIST_TYP})


def _entry(key: SigningKey, over: dict[int, Any] | None = None) -> dict[int, Any]:
    m: dict[int, Any] = IssuerEntry(key.public(), "SH", NOW - 10, NOW + 10).to_cbor()
    m.update(over or {})
    return m


def _refused(token: bytes, root: SigningKey, *, now: int = NOW) -> ListError:
    with pytest.raises(ListError) as exc:
        parse_trust_list(token, root.public(), now=now)
    return exc.value


# --- trust list entries ---------------------------------------------------------------------------


def test_an_entry_that_is_not_a_map_is_named(ed_key: SigningKey) -> None:
    err = _refused(_trust_token(ed_key, [[1, 2]]), ed_key)
    assert (err.reason, err.detail) == (Reason.LIST_MALFORMED, "issuer entry is not a map")


def test_an_unknown_algorithm_is_named(ed_key: SigningKey) -> None:
    err = _refused(_trust_token(ed_key, [_entry(ed_key, {1: 999})]), ed_key)
    assert err.reason is Reason.LIST_MALFORMED
    assert err.detail == "unknown algorithm, or a code type that is not an integer"


def test_a_bad_issuer_key_is_named(ed_key: SigningKey) -> None:
    err = _refused(_trust_token(ed_key, [_entry(ed_key, {2: b"not a key"})]), ed_key)
    assert err.reason is Reason.LIST_MALFORMED and err.detail.startswith("issuer key: not a DER public key")


def test_the_listed_kid_is_the_key_id_even_when_not_derived(ed_key: SigningKey) -> None:
    """The trust list is authoritative for a key's id: codes name the kid the list gives."""
    other = SigningKey.generate()
    tl = parse_trust_list(_trust_token(ed_key, [_entry(other, {0: b"kid-0001"})]), ed_key.public(), now=NOW)
    assert tl.issuers[0].key.kid == b"kid-0001"
    assert tl.keys_for("SH") == {b"kid-0001": tl.issuers[0].key}


@pytest.mark.parametrize("slot", [60, 6 * 3600, 3600])
def test_slots_at_the_bounds_are_read(ed_key: SigningKey, slot: int) -> None:
    tl = parse_trust_list(_trust_token(ed_key, [_entry(ed_key, {9: slot})]), ed_key.public(), now=NOW)
    assert tl.issuers[0].slot == slot and tl.keyring[ed_key.kid].slot == slot


@pytest.mark.parametrize("slot", [59, 6 * 3600 + 1, 420, 0])
def test_slots_outside_the_bounds_are_refused(ed_key: SigningKey, slot: int) -> None:
    err = _refused(_trust_token(ed_key, [_entry(ed_key, {9: slot})]), ed_key)
    assert err.reason is Reason.LIST_MALFORMED
    assert err.detail == f"slot {slot} s is not a divisor of a day of 60 s to 6 h"


def test_optional_fields_round_trip_and_absent_ones_stay_absent(ed_key: SigningKey) -> None:
    full = IssuerEntry(
        ed_key.public(),
        "SH",
        NOW - 10,
        NOW + 10,
        frozenset({CodeType.DYNAMIC, CodeType.OFFLINE}),
        status_uri="/v1/status-lists/SH",
        previous_forms_until=NOW + 5,
        slot=3600,
        timestamp_uri="/v1/status-lists/SH/timestamp",
    )
    bare = IssuerEntry(ed_key.public(), "SH", NOW - 10, NOW + 10)
    assert set(bare.to_cbor()) == {0, 1, 2, 3, 4, 5, 6}
    assert set(full.to_cbor()) == set(range(11))
    for entry in (full, bare):
        assert IssuerEntry.from_cbor(entry.to_cbor()) == entry
    tk = full.trusted_key()
    assert (tk.issuer, tk.valid_from, tk.valid_until, tk.status_uri, tk.previous_forms_until, tk.slot) == (
        "SH",
        NOW - 10,
        NOW + 10,
        "/v1/status-lists/SH",
        NOW + 5,
        3600,
    )
    assert tk.code_types == frozenset({CodeType.DYNAMIC, CodeType.OFFLINE}) and tk.key == ed_key.public()


def test_issuer_ids_keep_list_order_without_repeats() -> None:
    keys = [SigningKey.generate() for _ in range(3)]
    entries = [
        IssuerEntry(k.public(), name, NOW - 10, NOW + 10) for k, name in zip(keys, ("JS", "SH", "JS"), strict=True)
    ]
    root = SigningKey.generate()
    tl = parse_trust_list(sign_trust_list(entries, root, version=1, now=NOW, ttl=60), root.public(), now=NOW)
    assert tl.issuer_ids() == ["JS", "SH"]
    assert set(tl.keys_for("JS")) == {keys[0].kid, keys[2].kid}


# --- trust list signing and parsing ------------------------------------------------------------------


def test_trust_list_claims_are_what_was_signed(ed_key: SigningKey) -> None:
    root = SigningKey.generate()
    token = sign_trust_list([IssuerEntry(ed_key.public(), "SH", 1, 2)], root, version=7, now=NOW, ttl=99, root_name="R")
    tl = parse_trust_list(token, root.public(), now=NOW)
    assert (tl.version, tl.issued_at, tl.expires_at, tl.root_name) == (7, NOW, NOW + 99, "R")
    assert parse_trust_list(sign_trust_list([], root, version=1, now=NOW, ttl=1), root.public(), now=NOW).root_name == (
        "root"
    )


@pytest.mark.parametrize(("version", "ttl", "count"), [(0, 60, 1), (1, 0, 1), (1, 60, 1001)])
def test_trust_list_signing_refuses_bad_arguments(version: int, ttl: int, count: int) -> None:
    root = SigningKey.generate()
    entries = [IssuerEntry(root.public(), "SH", 1, 2)] * count
    with pytest.raises(UsageError) as exc:
        sign_trust_list(entries, root, version=version, now=NOW, ttl=ttl)
    assert exc.value.detail == "version must be >= 1, ttl > 0, and at most 1000 issuers"


def test_trust_list_of_exactly_1000_issuers_is_signed_and_read() -> None:
    root = SigningKey.generate()
    entries = [IssuerEntry(root.public(), f"I{i}", 1, 2) for i in range(1000)]
    with pytest.raises(UsageError, match="duplicate"):
        sign_trust_list(entries, root, version=1, now=NOW, ttl=60)  # one key listed 1000 times
    entries = [IssuerEntry(SigningKey.generate().public(), f"I{i}", 1, 2) for i in range(1000)]
    tl = parse_trust_list(sign_trust_list(entries, root, version=1, now=NOW, ttl=60), root.public(), now=NOW)
    assert len(tl.issuers) == 1000


def test_trust_list_of_1001_entries_is_refused_by_the_reader(ed_key: SigningKey) -> None:
    err = _refused(_trust_token(ed_key, [[]] * 1001), ed_key)
    assert (err.reason, err.detail) == (Reason.LIST_MALFORMED, "1001 issuers: at most 1000")


def test_trust_list_with_a_duplicate_kid_is_malformed(ed_key: SigningKey) -> None:
    err = _refused(_trust_token(ed_key, [_entry(ed_key), _entry(ed_key)]), ed_key)
    assert err.reason is Reason.LIST_MALFORMED and "duplicate" in err.detail


def test_trust_list_expiry_boundary(ed_key: SigningKey) -> None:
    token = _trust_token(ed_key, [])
    assert parse_trust_list(token, ed_key.public(), now=NOW + 59).expires_at == NOW + 60
    err = _refused(token, ed_key, now=NOW + 60)
    assert (err.reason, err.detail) == (Reason.LIST_EXPIRED, "expired 0 s ago")
    assert _refused(token, ed_key, now=NOW + 75).detail == "expired 15 s ago"


def test_trust_list_size_cap_is_one_mebibyte(ed_key: SigningKey) -> None:
    with pytest.raises(ListError) as exc:
        parse_trust_list(b"\x00" * (1024 * 1024 + 1), ed_key.public(), now=NOW)
    assert (exc.value.reason, exc.value.detail) == (Reason.TOO_LARGE, "trust list over 1048576 bytes")
    with pytest.raises(ListError) as exc:
        parse_trust_list(b"\x00" * (1024 * 1024), ed_key.public(), now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED  # read, then refused as bytes that are no list


def test_trust_list_rollback_detail(ed_key: SigningKey) -> None:
    tl = parse_trust_list(_trust_token(ed_key, []), ed_key.public(), now=NOW)
    tl.check_newer(None)
    tl.check_newer(1)
    with pytest.raises(ListError) as exc:
        tl.check_newer(2)
    assert (exc.value.reason, exc.value.detail) == (Reason.LIST_ROLLBACK, "version 1 < held 2")


# --- status lists --------------------------------------------------------------------------------


def test_status_list_claims_are_what_was_signed(ed_key: SigningKey) -> None:
    lst = StatusList(20, bits=2)
    token = sign_status_list(lst, ed_key, uri="/l/SH", issuer="SH", version=3, now=NOW, valid_for=600, ttl=45)
    sl = parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    assert (sl.uri, sl.issuer, sl.version, sl.issued_at, sl.expires_at, sl.ttl, sl.bits, sl.size) == (
        "/l/SH",
        "SH",
        3,
        NOW,
        NOW + 600,
        45,
        2,
        20,
    )
    assert sl.data == bytes(5) and sl.digest == list_digest(2, 20, bytes(5))


@pytest.mark.parametrize(("version", "valid_for", "ttl"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_status_list_signing_refuses_bad_arguments(ed_key: SigningKey, version: int, valid_for: int, ttl: int) -> None:
    with pytest.raises(UsageError) as exc:
        sign_status_list(
            StatusList(8), ed_key, uri="u", issuer="SH", version=version, now=NOW, valid_for=valid_for, ttl=ttl
        )
    assert exc.value.detail == "version must be >= 1 and durations positive"


def test_status_list_smallest_arguments_are_signed(ed_key: SigningKey) -> None:
    token = sign_status_list(StatusList(1), ed_key, uri="u", issuer="SH", version=1, now=NOW, valid_for=1, ttl=1)
    assert parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW).expires_at == NOW + 1


def test_status_list_expiry_boundary_and_detail(ed_key: SigningKey) -> None:
    token = sign_status_list(StatusList(8), ed_key, uri="u", issuer="SH", version=1, now=NOW, valid_for=60, ttl=1)
    keys = {ed_key.kid: ed_key.public()}
    parse_status_list(token, keys, now=NOW + 59)
    assert parse_status_list(token, keys, now=None).expires_at == NOW + 60  # a held list re-read
    for now, detail in ((NOW + 60, "expired 0 s ago"), (NOW + 70, "expired 10 s ago")):
        with pytest.raises(ListError) as exc:
            parse_status_list(token, keys, now=now)
        assert (exc.value.reason, exc.value.detail) == (Reason.LIST_EXPIRED, detail)


def test_status_list_size_cap_is_forty_mebibytes(ed_key: SigningKey) -> None:
    with pytest.raises(ListError) as exc:
        parse_status_list(b"\x00" * (40 * 1024 * 1024 + 1), {}, now=NOW)
    assert (exc.value.reason, exc.value.detail) == (Reason.TOO_LARGE, "status list over 41943040 bytes")


def test_status_list_rollback_detail(ed_key: SigningKey) -> None:
    token = sign_status_list(StatusList(8), ed_key, uri="u", issuer="SH", version=4, now=NOW, valid_for=60, ttl=1)
    sl = parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    sl.check_newer(None)
    sl.check_newer(4)
    with pytest.raises(ListError) as exc:
        sl.check_newer(5)
    assert (exc.value.reason, exc.value.detail) == (Reason.LIST_ROLLBACK, "version 4 < held 5")


def test_list_digest_is_pinned() -> None:
    """SHA-256 over the domain string, one byte of bits, eight bytes of size (big-endian) and the data."""
    import hashlib

    expected = hashlib.sha256(b"suishenma status list\x00" + b"\x02" + (300).to_bytes(8, "big") + b"\xab" * 75)
    assert list_digest(2, 300, b"\xab" * 75) == expected.digest()
    assert list_digest(1, 600, b"\xab" * 75) != list_digest(2, 300, b"\xab" * 75)


# --- caps on what is decoded, and how a list is inflated ---------------------------------------------


def _items(value: Any) -> int:
    """CBOR data items in ``value``, as RFC 8949 counts them: a map or array is one, plus its contents."""
    if isinstance(value, dict):
        return 1 + sum(_items(k) + _items(v) for k, v in value.items())
    if isinstance(value, list):
        return 1 + sum(_items(v) for v in value)
    return 1


def _status_claims(**extra: Any) -> dict[Any, Any]:
    lst = {"bits": 1, "lst": zlib.compress(bytes(2))}
    claims: dict[Any, Any] = {1: "SH", 2: "u", 6: NOW, 4: NOW + DAY, 65534: 60, 65533: lst, -65537: {10: 1, 12: 16}}
    claims.update(extra)
    return claims


def _status_token(key: SigningKey, claims: dict[Any, Any]) -> bytes:
    return forge.sign1(cbor2.dumps(claims), key, protected={1: -8, 4: key.kid, 16: STATUS_LIST_TYP})


def _padded(claims: dict[Any, Any], total: int) -> dict[Any, Any]:
    """``claims`` with one more claim (900, an array of zeros) making ``total`` items in all."""
    padded = {**claims, 900: []}
    padded[900] = [0] * (total - _items(padded))
    assert _items(padded) == total
    return padded


def test_a_status_list_token_holds_at_most_64_cbor_items(ed_key: SigningKey) -> None:
    keys = {ed_key.kid: ed_key.public()}
    assert parse_status_list(_status_token(ed_key, _padded(_status_claims(), 64)), keys, now=NOW).size == 16
    with pytest.raises(ListError) as exc:
        parse_status_list(_status_token(ed_key, _padded(_status_claims(), 65)), keys, now=NOW)
    assert (exc.value.reason, exc.value.detail) == (Reason.LIST_MALFORMED, "too many CBOR items")


def test_a_trust_list_holds_at_most_20020_cbor_items(ed_key: SigningKey) -> None:
    """1,000 issuers of up to 20 items each, and 20 for the rest."""
    claims = {1: "root", 6: NOW, 4: NOW + 60, -65537: {10: 1, 11: [_entry(ed_key)]}}
    token = forge.sign1(
        cbor2.dumps(_padded(claims, 20020)), ed_key, protected={1: -8, 4: ed_key.kid, 16: TRUST_LIST_TYP}
    )
    assert len(parse_trust_list(token, ed_key.public(), now=NOW).issuers) == 1
    token = forge.sign1(
        cbor2.dumps(_padded(claims, 20021)), ed_key, protected={1: -8, 4: ed_key.kid, 16: TRUST_LIST_TYP}
    )
    err = _refused(token, ed_key)
    assert (err.reason, err.detail) == (Reason.LIST_MALFORMED, "too many CBOR items")


def test_a_zero_ttl_is_named(ed_key: SigningKey) -> None:
    with pytest.raises(ListError) as exc:
        parse_status_list(_status_token(ed_key, _status_claims() | {65534: 0}), {ed_key.kid: ed_key.public()}, now=NOW)
    assert (exc.value.reason, exc.value.detail) == (Reason.LIST_MALFORMED, "ttl must be a positive number of seconds")


def test_bad_zlib_data_is_named(ed_key: SigningKey) -> None:
    claims = _status_claims() | {65533: {"bits": 1, "lst": b"\x78\x9c\xff\xff"}}
    with pytest.raises(ListError) as exc:
        parse_status_list(_status_token(ed_key, claims), {ed_key.kid: ed_key.public()}, now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED and exc.value.detail.startswith("bad zlib data: ")


def test_a_list_without_its_zlib_trailer_is_refused(ed_key: SigningKey) -> None:
    """The bits are all there but the stream never ends (its checksum cut off): nothing vouches for them."""
    claims = _status_claims() | {65533: {"bits": 1, "lst": zlib.compress(b"\x01\x00")[:-4]}}
    with pytest.raises(ListError) as exc:
        parse_status_list(_status_token(ed_key, claims), {ed_key.kid: ed_key.public()}, now=NOW)
    assert (exc.value.reason, exc.value.detail) == (
        Reason.LIST_MALFORMED,
        "list does not decompress to its declared size",
    )


def test_a_bomb_is_refused_without_inflating_it(ed_key: SigningKey) -> None:
    """64 MiB of zeros declared as 16 entries: inflation stops at the 2 bytes declared."""
    claims = _status_claims() | {65533: {"bits": 1, "lst": zlib.compress(bytes(64 << 20), 9)}}
    token = _status_token(ed_key, claims)
    tracemalloc.start()
    try:
        with pytest.raises(ListError) as exc:
            parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exc.value.reason is Reason.LIST_MALFORMED
    assert peak < 4 * len(token) + (1 << 20), peak


def test_a_status_list_built_on_given_bytes_uses_them() -> None:
    data = bytearray(b"\x04\x00")
    lst = StatusList(16, data=data)
    assert lst.data is data and lst.get(2) is EntryStatus.INVALID
    with pytest.raises(UsageError) as exc:
        StatusList(16, data=bytearray(3))
    assert exc.value.detail == "data length does not match size and bits"
    with pytest.raises(UsageError):
        StatusList(17, data=bytearray(2))  # 17 entries need a third byte
