"""Signed timestamps and status-list deltas in the core: round trips, sizes, every refusal by its reason,
and decoders that raise only our own errors on any bytes."""

from __future__ import annotations

import contextlib
import random
from array import array
from dataclasses import replace
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suishenma import (
    Alg,
    ListError,
    Reason,
    SigningKey,
    StatusList,
    SuishenmaError,
    UsageError,
    encode_delta,
    list_digest,
    parse_delta,
    parse_status_list,
    parse_timestamp,
    sign_checkpoint,
    sign_status_list,
    sign_timestamp,
    vouched,
)
from suishenma.labels import TIMESTAMP_TYP, EntryStatus
from suishenma.statusdelta import DIGEST_PREFIX, MAX_DELTA_BYTES, StatusDelta, changes_between
from tests.conftest import NOW
from tests.suishenma import forge

KEY = SigningKey.generate()
KEYS = {KEY.kid: KEY.public()}
DIGEST = bytes(range(32))


def _list(size: int, revoked: list[int], version: int = 1, at: int = NOW) -> tuple[StatusList, bytes]:
    lst = StatusList(size, bits=2)
    lst.set_many(revoked, EntryStatus.INVALID)
    body = sign_status_list(lst, KEY, uri="/s", issuer="SH", version=version, now=at, valid_for=7 * 86400, ttl=300)
    return lst, body


def _delta(old: StatusList, new: StatusList, first: int = 1, last: int = 2, issuer: str = "SH") -> bytes:
    indices, values = changes_between(bytes(old.data), old.size, bytes(new.data), new.size, 2)
    return encode_delta(
        issuer=issuer,
        from_version=first,
        to_version=last,
        from_digest=list_digest(2, old.size, bytes(old.data)),
        to_digest=list_digest(2, new.size, bytes(new.data)),
        bits=2,
        size=new.size,
        indices=indices,
        values=values,
    )


# --- timestamps -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", [Alg.EdDSA, Alg.ES256, Alg.SM2])
def test_timestamp_round_trip_within_200_bytes(alg: Alg) -> None:
    key = SigningKey.generate(alg)
    body = sign_timestamp(key, issuer="SH", version=2**32, size=1024, digest=DIGEST, now=NOW, valid_for=600)
    ts = parse_timestamp(body, {key.kid: key.public()}, now=NOW + 599)
    assert (ts.issuer, ts.version, ts.size, ts.digest) == ("SH", 2**32, 1024, DIGEST)
    assert (ts.issued_at, ts.expires_at) == (NOW, NOW + 600)
    assert len(body) <= 200


def test_an_expired_timestamp_is_refused_but_rereads_without_now() -> None:
    body = sign_timestamp(KEY, issuer="SH", version=3, size=1024, digest=DIGEST, now=NOW, valid_for=600)
    with pytest.raises(ListError) as e:
        parse_timestamp(body, KEYS, now=NOW + 600)
    assert e.value.reason is Reason.LIST_EXPIRED
    assert parse_timestamp(body, KEYS, now=None).version == 3


def test_a_timestamp_by_another_key_is_the_wrong_signer() -> None:
    body = sign_timestamp(
        SigningKey.generate(), issuer="SH", version=3, size=1024, digest=DIGEST, now=NOW, valid_for=600
    )
    with pytest.raises(ListError) as e:
        parse_timestamp(body, KEYS, now=NOW)
    assert e.value.reason is Reason.LIST_WRONG_SIGNER


def test_other_tokens_of_the_same_key_are_not_timestamps() -> None:
    for other in (sign_checkpoint("SH", 1, DIGEST, KEY, now=NOW), _list(1024, [])[1]):
        with pytest.raises(ListError) as e:
            parse_timestamp(other, KEYS, now=NOW)
        assert e.value.reason is Reason.LIST_MALFORMED and "typ" in e.value.detail


def _forged(claims: dict[int, Any]) -> bytes:
    return forge.sign1(cbor2.dumps(claims), KEY, protected={1: int(KEY.alg), 4: KEY.kid, 16: TIMESTAMP_TYP})


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({1: "SH", 6: NOW, 4: NOW + 600, -65537: {10: 3, 12: 1024, 15: b"short"}}, "32 bytes"),
        ({1: "SH", 6: NOW, 4: NOW + 600, -65537: {10: 0, 12: 1024, 15: DIGEST}}, "at least 1"),
        ({1: "SH", 6: NOW, 4: NOW + 600, -65537: {10: 3, 12: 0, 15: DIGEST}}, "size in range"),
        ({1: "SH", 6: NOW, 4: NOW + 600, -65537: {10: 3, 12: 2**28 + 1, 15: DIGEST}}, "size in range"),
        ({1: "SH", 6: NOW, 4: NOW, -65537: {10: 3, 12: 1024, 15: DIGEST}}, "expire after"),
        ({1: "SH", 6: NOW, 4: NOW + 600, -65537: {12: 1024, 15: DIGEST}}, "missing"),
        ({1: "SH", 6: NOW, 4: NOW + 600, -65537: {10: 3, 15: DIGEST}}, "missing"),
        ({1: "SH", 6: NOW, 4: True, -65537: {10: 3, 12: 1024, 15: DIGEST}}, "wrong type"),
    ],
)
def test_malformed_timestamps_are_refused_by_reason(claims: dict[int, Any], detail: str) -> None:
    with pytest.raises(ListError) as e:
        parse_timestamp(_forged(claims), KEYS, now=NOW)
    assert e.value.reason is Reason.LIST_MALFORMED and detail in e.value.detail


def test_a_timestamp_over_its_cap_is_too_large() -> None:
    with pytest.raises(ListError) as e:
        parse_timestamp(b"\xd2" + bytes(2000), KEYS, now=NOW)
    assert e.value.reason is Reason.TOO_LARGE


def test_signing_refuses_what_no_verifier_would_take() -> None:
    for kwargs in ({"digest": b"short"}, {"version": 0}, {"valid_for": 0}, {"issuer": ""}, {"size": 0}):
        with pytest.raises(UsageError):
            good = {"issuer": "SH", "version": 1, "size": 1024, "digest": DIGEST, "now": NOW, "valid_for": 60}
            sign_timestamp(KEY, **{**good, **kwargs})


def test_vouched_extends_a_list_to_the_timestamps_time_only_for_its_exact_content() -> None:
    _, body = _list(1024, [5])
    held = parse_status_list(body, KEYS, now=NOW)
    later = NOW + 3 * 86400
    ts = parse_timestamp(
        sign_timestamp(KEY, issuer="SH", version=1, size=1024, digest=held.digest, now=later, valid_for=600),
        KEYS,
        now=later,
    )
    fresh = vouched(held, ts)
    assert (fresh.issued_at, fresh.expires_at) == (later, later + 7 * 86400)
    for version, digest, issuer, size in (
        (2, held.digest, "SH", 1024),
        (1, DIGEST, "SH", 1024),
        (1, held.digest, "JS", 1024),
        (1, held.digest, "SH", 2048),
    ):
        other = replace(ts, version=version, digest=digest, issuer=issuer, size=size)
        with pytest.raises(ListError) as e:
            vouched(held, other)
        assert e.value.reason is Reason.LIST_DELTA_MISMATCH


def test_the_digest_binds_size_and_bit_width() -> None:
    assert (
        len({list_digest(2, 1024, bytes(256)), list_digest(2, 1023, bytes(256)), list_digest(1, 2048, bytes(256))}) == 3
    )


# --- deltas -----------------------------------------------------------------------------------------------
def test_a_delta_turns_one_version_into_the_next() -> None:
    old, old_body = _list(4096, [3, 700, 4095])
    new, _ = _list(8192, [3, 4095, 5000], version=2)
    new.set(700, EntryStatus.SUSPENDED)
    delta = parse_delta(_delta(old, new))
    held = parse_status_list(old_body, KEYS, now=NOW)
    result = delta.apply_to(held)
    assert result.version == 2 and result.size == 8192 and result.data == bytes(new.data)
    assert result.digest == list_digest(2, 8192, bytes(new.data))
    assert list(delta.indices) == [700, 5000] and delta.values == bytes([2, 1])


def test_one_hundred_changes_in_a_city_list_cost_a_few_hundred_bytes() -> None:
    size = 1 << 26
    rng = random.Random(7)
    indices = sorted(rng.sample(range(size), 100))
    body = encode_delta(
        issuer="SH",
        from_version=1,
        to_version=2,
        from_digest=DIGEST,
        to_digest=DIGEST,
        bits=2,
        size=size,
        indices=indices,
        values=bytes([1] * 100),
    )
    assert len(body) < 400  # the gaps' entropy is about 2.9 bytes a change
    assert list(parse_delta(body).indices) == indices


def test_deltas_compose() -> None:
    a, _ = _list(1024, [1, 2])
    b, _ = _list(1024, [2, 3], version=2)
    c, _ = _list(2048, [3, 2000], version=3)
    ab, bc = parse_delta(_delta(a, b)), parse_delta(_delta(b, c, 2, 3))
    ac = ab.then(bc)
    assert (ac.from_version, ac.to_version, ac.from_digest, ac.to_digest) == (1, 3, ab.from_digest, bc.to_digest)
    assert ac.apply(bytes(a.data), 2, 1024) == bytes(c.data)
    assert parse_delta(ac.to_bytes()).apply(bytes(a.data), 2, 1024) == bytes(c.data)
    with pytest.raises(ListError) as e:
        bc.then(ab)
    assert e.value.reason is Reason.LIST_DELTA_MISMATCH


def test_a_delta_for_another_list_does_not_apply() -> None:
    old, old_body = _list(1024, [1])
    new, _ = _list(1024, [1, 2], version=2)
    held = parse_status_list(old_body, KEYS, now=NOW)
    good = parse_delta(_delta(old, new))
    for wrong in (
        replace(good, issuer="JS"),
        replace(good, from_version=2, to_version=3),
        replace(good, from_digest=bytes(DIGEST_PREFIX)),
        replace(good, bits=1),
    ):
        with pytest.raises(ListError) as e:
            wrong.apply_to(held)
        assert e.value.reason is Reason.LIST_DELTA_MISMATCH


def _raw(**over: Any) -> bytes:
    fields: dict[int, Any] = {1: "SH", 2: 1, 3: 2, 4: bytes(8), 5: bytes(8), 6: 2, 7: 1024, 8: 1, 9: 0, 10: b"\x20"}
    fields.update({int(k.lstrip("f")): v for k, v in over.items()})
    return cbor2.dumps({k: v for k, v in fields.items() if v is not None})


def test_the_raw_form_of_one_change() -> None:
    # gap 0 at rice 0: "0", value 1 in two bits: "01", padded: 0b0010_0000
    delta = parse_delta(_raw())
    assert list(delta.indices) == [0] and delta.values == b"\x01"


@pytest.mark.parametrize(
    ("over", "detail"),
    [
        ({"f8": 10**6, "f10": b"\x00" * 10}, "do not fit"),  # a count the bytes cannot hold: refused before decoding
        ({"f10": b"\xff"}, "end early"),  # a unary run that never ends
        ({"f10": b"\x20\x00"}, "left over"),
        ({"f10": b"\x21"}, "left over"),  # padding that is not zero
        ({"f9": 41}, "rice"),
        ({"f3": 1}, "out of range"),
        ({"f6": 3}, "out of range"),
        ({"f4": bytes(7)}, "prefixes"),
        ({"f1": None}, "issuer"),
        ({"f2": True}, "from_version"),
        ({"f7": 1, "f10": b"\xa0"}, "past the list"),  # gap 1 with rice 0 ("10"), then "10": index 1 of 1
    ],
)
def test_malformed_deltas_are_refused_by_reason(over: dict[str, Any], detail: str) -> None:
    with pytest.raises(ListError) as e:
        parse_delta(_raw(**over))
    assert e.value.reason is Reason.LIST_MALFORMED and detail in e.value.detail


def test_a_delta_over_its_cap_is_too_large_and_not_a_map_is_malformed() -> None:
    with pytest.raises(ListError) as e:
        parse_delta(bytes(MAX_DELTA_BYTES + 1))
    assert e.value.reason is Reason.TOO_LARGE
    with pytest.raises(ListError) as e:
        parse_delta(cbor2.dumps([1, 2]))
    assert e.value.reason is Reason.LIST_MALFORMED


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 3000),
    st.integers(0, 3000),
    st.lists(st.tuples(st.integers(0, 5999), st.integers(0, 3)), max_size=80),
    st.sampled_from([1, 2]),
)
def test_property_diff_encode_parse_apply_round_trips(
    old_size: int, grown: int, changes: list[tuple[int, int]], bits: int
) -> None:
    new_size = old_size + grown  # lists never shrink
    old = StatusList(old_size, bits=bits)
    new = StatusList(new_size, bits=bits)
    for i, v in changes:
        v &= (1 << bits) - 1
        if i < old_size:
            old.set(i, EntryStatus(v % 3) if bits == 2 else EntryStatus(v & 1))
        if i < new_size:
            new.set(i, EntryStatus((v + 1) % 3) if bits == 2 else EntryStatus(~v & 1))
    indices, values = changes_between(bytes(old.data), old_size, bytes(new.data), new_size, bits)
    body = encode_delta(
        issuer="SH",
        from_version=1,
        to_version=2,
        from_digest=DIGEST,
        to_digest=DIGEST,
        bits=bits,
        size=new_size,
        indices=indices,
        values=values,
    )
    delta = parse_delta(body)
    assert delta.apply(bytes(old.data), bits, old_size) == bytes(new.data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_property_any_bytes_raise_only_our_errors(data: bytes) -> None:
    for parse in (lambda: parse_delta(data), lambda: parse_timestamp(data, KEYS, now=NOW)):
        with contextlib.suppress(SuishenmaError):
            parse()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_mutated_deltas_raise_only_our_errors(data: st.DataObject) -> None:
    old, _ = _list(1024, [1, 500])
    new, _ = _list(2048, [2, 500, 1500], version=2)
    body = bytearray(_delta(old, new))
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(SuishenmaError):
        delta = parse_delta(bytes(body))
        assert isinstance(delta, StatusDelta)
        delta.apply(bytes(old.data), 2, 1024)


def test_a_delta_to_a_shorter_list_is_refused() -> None:
    """An index once handed out keeps its entry: a delta that would cut the list off is a mismatch."""
    old, _ = _list(2048, [1, 1500])
    new, _ = _list(1024, [1], version=2)
    delta = parse_delta(_delta(old, new))
    with pytest.raises(ListError) as exc:
        delta.apply(bytes(old.data), 2, 2048)
    assert (exc.value.reason, exc.value.detail) == (
        Reason.LIST_DELTA_MISMATCH,
        "delta to 1024 entries for a list of 2048",
    )


def test_changes_between_finds_each_entry_that_differs() -> None:
    old = bytes([0b00_01_00_00]) + bytes(255)
    new = bytes([0b10_00_00_01]) + bytes(254) + bytes([0b01_00_00_00])
    indices, values = changes_between(old, 1024, new, 1024, 2)
    assert list(indices) == [0, 2, 3, 1023] and values == bytes([1, 0, 2, 1])
    assert array("q", []) == changes_between(old, 1024, old, 1024, 2)[0]
