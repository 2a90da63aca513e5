"""The fast path of the CBOR decoder and of COSE parsing decides exactly as the strict reader does.

``_cbor.loads`` and ``decode_at`` first try a fast decoder for the shapes every scan carries (short
maps with small integer keys, short strings, 4-byte times) and hand anything else to the strict
``_Reader``. These tests compare the two on crafted and random inputs: the same value, or the same
refusal with the same detail (docs/format.md §3, "The CBOR subset").
"""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suishenma import CodeFormatError, Reason, SigningKey, _cbor, _cose
from suishenma._cbor import CborError, _Reader, decode_at, loads
from tests.suishenma import forge

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _strict(data: bytes, max_depth: int = 8, max_items: int = 4096) -> object:
    """What the strict reader alone decides for ``data`` as ``loads`` would: a value or a CborError."""
    try:
        value, end = _Reader(data, max_depth, max_items).item(0, 0)
        if end != len(data):
            raise CborError("trailing bytes after CBOR item")
    except CborError as exc:
        return ("refused", str(exc))
    return ("value", value)


def _decided(data: bytes, max_depth: int = 8, max_items: int = 4096) -> object:
    try:
        value = loads(data, max_depth=max_depth, max_items=max_items)
    except CborError as exc:
        return ("refused", str(exc))
    return ("value", value)


def _same(data: bytes, max_depth: int = 8, max_items: int = 4096) -> None:
    strict, decided = _strict(data, max_depth, max_items), _decided(data, max_depth, max_items)
    assert decided == strict
    if strict[0] == "value":  # equal values, and of the same types all the way down
        assert repr(decided) == repr(strict)


# Crafted around every inline case of the fast path: each one next to its edge.
CRAFTED = [
    b"\xa2\x01\x00\x01\x01",  # duplicate small key
    b"\xa2\x20\x00\x20\x01",  # duplicate -1, read inline
    b"\xa2\x37\x00\x37\x01",  # duplicate -24, the last inline negative key
    b"\xa2\x38\x18\x00\x38\x18\x01",  # duplicate -25, not inline
    b"\xa2\x3a\x00\x01\x00\x00\x00\x3a\x00\x01\x00\x00\x01",  # duplicate -65537, the private claim key
    b"\xa2\x3a\x00\x01\x00\x00\x00\x39\xff\xff\x01",  # -65537 and -65536 differ
    b"\xa1\x3a\x00\x01\x00",  # the 4-byte key truncated
    b"\xa2\x61a\x00\x61a\x01",  # duplicate text key
    b"\xa2\x41a\x00\x41a\x01",  # duplicate byte-string key
    b"\xa2\x41a\x00\x61a\x01",  # b"a" and "a" differ
    b"\xa2\x00\x00\x18\x00\x01",  # 0 twice, once in the one-byte form
    b"\xa1\xf4\x00",  # false as a key
    b"\xa1\xf6\x00",  # null as a key
    b"\xa1\x80\x00",  # an array as a key
    b"\xa1\xa0\x00",  # a map as a key
    b"\xa1\xc1\x00\x00",  # a tagged key
    b"\xa1\xf9\x3c\x00\x00",  # a half-float key
    b"\xa1\x01\x1a\x00\x00\x00",  # a 4-byte value truncated
    b"\xa1\x01\x1a\x00\x00\x00\x01",
    b"\xa1\x01\x42\x00",  # a short byte string past the end
    b"\xa1\x01\x42\x00\x00",
    b"\xa1\x01\x58",  # a one-byte length missing
    b"\xa1\x01\x58\x02\x00",  # a one-byte-length string past the end
    b"\xa1\x01\x58\x02\x00\x00",
    b"\xa1\x01\x58\x00",
    b"\xa1\x01\x62\xff\xfe",  # invalid UTF-8 in a short text value
    b"\xa1\x01\x62\xc3\xa9",
    b"\xa1\x01\x63\xed\xa0\x80",  # an encoded surrogate is not UTF-8
    b"\xa1\x01\x78\x02\xff\xfe",  # the same, not inline
    b"\xa1\x01\xa1\x01\xa1\x01\xf7",  # undefined, deep inside
    b"\xa1\x01\xa1\x01\xc0\x61a",  # tag 0 inside a nested map
    b"\xa1\x01\xa1\x01\xfa\x00\x00\x00\x00",  # a float inside a nested map
    b"\xa1\x01\xbf\xff",  # an indefinite map value
    b"\xa1\x01\x5f\x41\x00\xff",  # an indefinite byte string value
    b"\xa1\x01\xa2\x00\x00",  # a nested map larger than its input
    b"\xa1\x01\xb7" + b"\x00" * 46,  # a nested map of 23 pairs
    b"\xa1\x01\xb8\x18" + b"\x00" * 48,  # a nested map of 24 pairs, not a short one
    b"\xb8\x18" + b"".join(bytes((k, 0)) if k < 24 else bytes((0x18, k, 0)) for k in range(24)),
    b"\x97" + b"\x00" * 23,  # arrays around the short edge
    b"\x98\x18" + b"\x00" * 24,
    b"\x82\x1a\x00\x00\x00\x01\x58\x01\x00",
    b"\x81\xa1\x01\x01",
    b"\x81\xa2\x01\x00\x01\x00",  # a duplicate inside an array
    b"\xa1\x01\x81\x81\x81\x00",
    b"\xa0\x00",  # trailing bytes
    b"\xa1\x01\x01\x00",
    b"\xf5",
    b"\xf8\x15",
    b"\x1c",
    b"",
]


@pytest.mark.parametrize("data", CRAFTED)
def test_fast_path_decides_as_the_strict_reader(data: bytes) -> None:
    _same(data)
    _same(b"\xa1\x00" + data[:1] + data)  # the same bytes one map deeper (often malformed: that too)


@pytest.mark.parametrize("depth", range(10))
def test_nesting_cap_is_the_same_for_nested_short_maps(depth: int) -> None:
    data = b"\xa1\x01" * depth + b"\x00"
    for cap in range(10):
        _same(data, max_depth=cap)


def test_item_cap_is_the_same_at_every_count() -> None:
    """Claims-like maps with nested maps: the fast path counts a container's children up front."""
    data = cbor2.dumps(
        {1: "SH", 2: b"\x00" * 8, 6: 1_790_000_000, 8: {1: {1: 1, -1: 6, -2: b"k" * 32}}, -65537: {0: 0}}
    )
    for cap in range(30):
        _same(data, max_items=cap)
    unprotected = cbor2.dumps({12: b"s" * 64, 13: {6: 1_790_000_000}}) + b"\x58\x01\x00"
    for cap in range(10):
        try:
            decided: object = decode_at(unprotected, 0, max_items=cap)
        except CborError as exc:
            decided = str(exc)
        try:
            strict: object = _Reader(unprotected, 8, cap).item(0, 0)
        except CborError as exc:
            strict = str(exc)
        assert decided == strict


def test_only_bytes_take_the_fast_path() -> None:
    """A bytearray decodes as before (its strings stay bytearrays, and are refused as keys)."""
    assert loads(bytearray(b"\xa1\x01\x41x")) == {1: bytearray(b"x")}
    with pytest.raises(CborError, match=r"^CBOR map keys must be integers or strings$"):
        loads(bytearray(b"\xa1\x41x\x00"))


_ATOMS = st.sampled_from(
    [
        *(b"\x00", b"\x17", b"\x18\x18", b"\x1a\x00\x00\x00\x01", b"\x20", b"\x37", b"\x3a\x00\x01\x00\x00"),
        *(b"\x41a", b"\x58\x01a", b"\x61a", b"\x62\xc3\xa9", b"\xf4", b"\xf6", b"\xf7", b"\xfa\x00\x00\x00\x00"),
        *(b"\xc0", b"\x1f", b"\x1c", b"\xff", b"\x58", b"\x1a\x00"),
    ]
)


@st.composite
def _heads(draw: st.DrawFn) -> bytes:
    """Sequences of heads and atoms, container heads among them: shapes close to the fast path's."""
    parts = draw(
        st.lists(
            st.one_of(
                _ATOMS,
                st.integers(0x80, 0x83).map(lambda b: bytes((b,))),
                st.integers(0xA0, 0xA3).map(lambda b: bytes((b,))),
            ),
            max_size=14,
        )
    )
    return b"".join(parts)


@FUZZ
@given(st.one_of(_heads(), st.binary(max_size=40)), st.integers(0, 9), st.integers(0, 20))
def test_random_inputs_are_decided_as_the_strict_reader_decides(data: bytes, depth: int, items: int) -> None:
    _same(data, max_depth=depth, max_items=items)
    _same(data)


@FUZZ
@given(
    st.recursive(
        st.one_of(
            st.integers(-(2**64), 2**64 - 1), st.binary(max_size=30), st.text(max_size=30), st.booleans(), st.none()
        ),
        lambda c: st.one_of(
            st.lists(c, max_size=5),
            st.dictionaries(
                st.one_of(st.integers(-(2**33), 2**33), st.text(max_size=3), st.binary(max_size=3)), c, max_size=5
            ),
        ),
        max_leaves=20,
    )
)
def test_subset_values_roundtrip_through_the_fast_path(value: object) -> None:
    data = cbor2.dumps(value)
    assert loads(data, max_depth=64) == value
    _same(data)


# --- COSE_Sign1 parsing ----------------------------------------------------------------------------

KEY = SigningKey.generate()


def test_cached_protected_header_cannot_be_changed_by_a_caller() -> None:
    message = forge.sign1(cbor2.dumps(forge.claims_map()), KEY)
    first = _cose.parse(message)
    first.protected[1] = 0
    first.protected[99] = "x"
    again = _cose.parse(message)
    assert again.protected == {1: int(KEY.alg), 4: KEY.kid}
    assert again.protected is not first.protected


def test_protected_header_with_a_container_is_decoded_every_time() -> None:
    message = forge.sign1(cbor2.dumps(forge.claims_map()), KEY, protected={1: int(KEY.alg), 4: KEY.kid, 99: [1]})
    first = _cose.parse(message)
    first.protected[99].append(2)
    assert _cose.parse(message).protected[99] == [1]


@pytest.mark.parametrize(
    ("tail", "detail"),
    [
        (b"", "index out of range"),  # nothing after the array head
        (b"\x4a\xa1\x01\x27", "byte string runs past the end"),  # a short protected header past the end
        (b"\x43\xa1\x01\x27\xa0\x58", "byte string runs past the end"),  # a payload head with no length
        (b"\x43\xa1\x01\x27\xa0\x41\x00\x58", "byte string runs past the end"),  # a signature head, no length
        (b"\x58", "byte string runs past the end"),  # a protected header head with no length
        (b"\x59\x00", "byte string runs past the end"),
        (b"\x43\xa1\x01\x27\xa0\x58\x05\x00", "byte string runs past the end"),
        (b"\x43\xa1\x01\x27\xa0\x41\x00\x58\x40\x00", "byte string runs past the end"),  # a short signature
        (b"\x43\xa1\x01\x27\xa0\x41\x00\x40\x00", "trailing bytes after COSE_Sign1"),
        (b"\x43\xa1\x01\x27\xa0\x61\x00\x40", "expected a byte string"),
        (b"\x43\xa1\x01\x27\xa0\x41\x00\x5f\x40\xff", "indefinite-length byte string"),
    ],
)
def test_cose_framing_refusals_are_unchanged(tail: bytes, detail: str) -> None:
    with pytest.raises(CodeFormatError) as exc:
        _cose.parse(b"\xd2\x84" + tail)
    assert exc.value.reason is Reason.MALFORMED
    assert exc.value.detail == detail


def test_cose_framing_reads_long_forms_too() -> None:
    """Non-shortest heads (allowed: decoders do not require the shortest forms) parse the same."""
    protected = cbor2.dumps({1: int(KEY.alg), 4: KEY.kid})
    payload, signature = b"\xa0", b"s" * 64
    short = _cose.parse(_cose.assemble(protected, b"\xa0", payload, signature))
    long = _cose.parse(
        b"\xd2\x84"
        + b"\x58"
        + bytes((len(protected),))
        + protected
        + b"\xa0"
        + b"\x59\x00\x01"
        + payload
        + b"\x5a\x00\x00\x00\x40"
        + signature
    )
    assert long == short


def test_unprotected_header_goes_through_the_same_subset() -> None:
    protected = cbor2.dumps({1: int(KEY.alg), 4: KEY.kid})
    for unprotected, detail in [
        (b"\xa2\x0c\x41\x00\x0c\x41\x00", "duplicate CBOR map key 12"),
        (b"\xa1\x0c\xc0\x41\x00", "CBOR tag 0 is not allowed here"),
        (
            b"\xa1\x0d\xa1\x06\xfb" + b"\x00" * 8,
            "CBOR floats and simple values other than false, true and null are not allowed",
        ),
    ]:
        with pytest.raises(CodeFormatError) as exc:
            _cose.parse(_cose.assemble(protected, unprotected, b"\xa0", b"s" * 64))
        assert exc.value.reason is Reason.MALFORMED and exc.value.detail == detail


def test_bstr_header_table_matches_the_rule() -> None:
    for n in [*range(300), 0xFFFF, 0x10000]:
        assert _cose.bstr_header(n) == cbor2.dumps(b"\x00" * n)[: len(_cose.bstr_header(n))]
    assert _cbor.dumps(b"") == _cose.bstr_header(0)
