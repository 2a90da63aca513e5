"""The decoders at their edges: every cap at exactly its value and one past it, and each structural
check met alone (docs/format.md §3.1, RFC 8949, RFC 9052 §4.2, RFC 9285).

A cap that is off by one, or a check that lets a crafted item through to a later, unrelated
failure, is what an attacker probes first. Each rejection is asserted by its reason and detail.
"""

from __future__ import annotations

import zlib
from typing import Any

import cbor2
import pytest

from suishenma import CodeFormatError, CodeSignatureError, ListError, Reason, SigningKey
from suishenma._base45 import b45decode, b45encode
from suishenma._cbor import CborError, decode_at, loads
from suishenma._cose import _bstr, _sig_structure, assemble, bstr_header, parse, sign, verify
from suishenma._signed_list import get, open_signed
from suishenma._text import decode, encode
from suishenma.labels import Header

PREFIX = "SM1:"


def _nested(depth: int) -> bytes:
    """``depth`` arrays, one inside the other, around a 0."""
    return b"\x81" * depth + b"\x00"


def _items(n: int) -> bytes:
    """An array that is ``n`` CBOR items in all (itself and ``n - 1`` zeros)."""
    return cbor2.dumps([0] * (n - 1))


# --- CBOR: caps at their value -------------------------------------------------------------------


def test_cbor_default_depth_is_eight_levels_exactly() -> None:
    """A deeper default would let a crafted code recurse further into every verifier."""
    assert loads(_nested(8)) == [[[[[[[[0]]]]]]]]
    with pytest.raises(CborError, match="nested too deeply"):
        loads(_nested(9))


def test_cbor_depth_counts_map_values_like_array_elements() -> None:
    inner = b"\xa1\x00" * 8 + b"\x00"  # {0: {0: ... 0}} eight maps deep
    assert loads(inner) is not None
    with pytest.raises(CborError, match="nested too deeply"):
        loads(b"\xa1\x00" + inner)


def test_cbor_default_item_cap_is_4096_exactly() -> None:
    """The cap that bounds the work a hostile list can ask for."""
    assert len(loads(_items(4096))) == 4095
    with pytest.raises(CborError, match="too many CBOR items"):
        loads(_items(4097))


def test_cbor_item_cap_is_exact_for_a_caller_cap() -> None:
    assert len(loads(_items(50), max_items=50)) == 49
    with pytest.raises(CborError, match="too many CBOR items"):
        loads(_items(51), max_items=50)


def test_cbor_inline_integer_keys_count_against_the_item_cap() -> None:
    """Small integer keys take the fast path; they are items all the same."""
    small = cbor2.dumps({k: 0 for k in range(10)})  # 1 + 10 keys + 10 values = 21 items
    assert len(loads(small, max_items=21)) == 10
    with pytest.raises(CborError, match="too many CBOR items"):
        loads(small, max_items=20)


def test_cbor_inline_key_is_refused_when_it_alone_breaks_the_cap() -> None:
    """The key is the item over the cap: the value after it is never read."""
    with pytest.raises(CborError, match="too many CBOR items"):
        loads(b"\xa1\x00\x00", max_items=1)


def test_cbor_byte_cap_is_exact() -> None:
    item = cbor2.dumps(b"x" * 8)  # 9 bytes
    assert loads(item, max_bytes=9) == b"x" * 8
    with pytest.raises(CborError, match="larger than 8 bytes"):
        loads(item, max_bytes=8)


def test_decode_at_applies_depth_and_item_caps_from_the_given_position() -> None:
    data = b"\xff" + _nested(3)
    assert decode_at(data, 1, max_depth=3) == ([[[0]]], len(data))
    with pytest.raises(CborError, match="nested too deeply"):
        decode_at(data, 1, max_depth=2)
    with pytest.raises(CborError, match="too many CBOR items"):
        decode_at(data, 1, max_items=3)
    assert decode_at(b"\xff" + _nested(8), 1)[0] is not None  # the default depth, as for loads
    with pytest.raises(CborError, match="nested too deeply"):
        decode_at(b"\xff" + _nested(9), 1)
    with pytest.raises(CborError, match="too many CBOR items"):
        decode_at(b"\xff" + _items(4097), 1)


# --- CBOR: lengths that reach exactly the end, or one byte past it -------------------------------


@pytest.mark.parametrize(
    ("item", "value"),
    [
        (b"\x17", 23),
        (b"\x18\x18", 24),  # one-byte argument
        (b"\x19\x01\x00", 256),  # two-byte argument, ending the input
        (b"\x1a\x00\x01\x00\x00", 65536),
        (b"\x1b\x00\x00\x00\x01\x00\x00\x00\x00", 2**32),
        (b"\x38\x18", -25),
        (b"\x41\x00", b"\x00"),  # a string ending exactly at the end
        (b"\x62\xc3\xa9", "é"),
        (b"\x82\x00\x00", [0, 0]),  # a container with exactly one byte per child
        (b"\xa1\x00\x00", {0: 0}),
        (b"\xa1\x18\x18\x00", {24: 0}),  # the smallest key that does not take the one-byte path
        (b"\xa1\x20\x00", {-1: 0}),
        (b"\xa1\x41\x00\x00", {b"\x00": 0}),
        (b"\xf4", False),
        (b"\xf5", True),
        (b"\xf6", None),
    ],
)
def test_cbor_items_that_end_exactly_at_the_input_end(item: bytes, value: Any) -> None:
    assert loads(item) == value
    assert type(loads(item)) is type(value)


@pytest.mark.parametrize(
    ("item", "detail"),
    [
        (b"\x18", "truncated"),  # argument byte missing
        (b"\x1b\x00\x00\x00\x00\x00\x00\x00", "truncated"),
        (b"\x82\x19\x01\x00", "truncated"),  # the second child starts at the end
        (b"\xa2\x00\x19\x01\x00", "truncated"),  # the second key starts at the end
        (b"\xa1\x00", "larger than its input"),  # a map entry is two items
        (b"\xa2\x00\x00\x00", "larger than its input"),
        (b"\x83\x00\x00", "larger than its input"),
        (b"\x42\x00", "runs past the end"),
        (b"\x62\x61", "runs past the end"),
    ],
)
def test_cbor_lengths_one_past_the_input_are_refused(item: bytes, detail: str) -> None:
    with pytest.raises(CborError, match=detail):
        loads(item)


def test_cbor_reserved_additional_information_is_refused_for_every_value() -> None:
    for info in (28, 29, 30):
        with pytest.raises(CborError, match="reserved CBOR additional information"):
            loads(bytes((info,)))
    with pytest.raises(CborError, match="indefinite-length"):
        loads(b"\x7f\x61a\xff")


# --- CBOR: keys and simple values ----------------------------------------------------------------


@pytest.mark.parametrize("key", [b"\xf5", b"\xf4", b"\xf6", b"\x80", b"\xa0"])
def test_cbor_map_keys_other_than_integers_and_strings_are_refused(key: bytes) -> None:
    """``True`` would equal key 1 in a dict: a boolean key could shadow a claim."""
    with pytest.raises(CborError, match="map keys must be integers or strings"):
        loads(b"\xa1" + key + b"\x00")


def test_cbor_duplicate_keys_are_refused_whichever_path_decodes_them() -> None:
    with pytest.raises(CborError, match="duplicate CBOR map key 24"):
        loads(b"\xa2\x18\x18\x00\x18\x18\x01")
    with pytest.raises(CborError, match="duplicate CBOR map key -1"):
        loads(b"\xa2\x20\x00\x20\x01")
    with pytest.raises(CborError, match="duplicate CBOR map key 5"):
        loads(b"\xa2\x05\x00\x18\x05\x01")  # 5, then 5 in a non-shortest form


@pytest.mark.parametrize("item", [b"\xf8\x14", b"\xf8\x15", b"\xf8\x16", b"\xf9\x00\x14", b"\xf7", b"\xf3"])
def test_cbor_simple_values_only_in_their_one_byte_form(item: bytes) -> None:
    """false / true / null written with a following byte (or as a float) are not the subset."""
    with pytest.raises(CborError, match="floats and simple values"):
        loads(item)


def test_cbor_tags_are_refused_whatever_their_number() -> None:
    for tag in (0, 24, 55799, 2**32):
        with pytest.raises(CborError, match=f"CBOR tag {tag} is not allowed"):
            loads(cbor2.dumps(cbor2.CBORTag(tag, 0)))


# --- CBOR: the EU DCC widening stays where it is asked for --------------------------------------


FLOAT_DETAIL = "CBOR floats and simple values other than false, true and null are not allowed"
DCC_ONLY = [
    (cbor2.dumps(1.5), FLOAT_DETAIL, 1.5),
    (cbor2.dumps(cbor2.CBORTag(0, "2021-06-01T00:00:00Z")), "CBOR tag 0 is not allowed here", "2021-06-01T00:00:00Z"),
]


@pytest.mark.parametrize(("item", "detail", "value"), DCC_ONLY, ids=["float", "date-time-tag"])
def test_decode_at_never_admits_dcc_floats_or_tags(item: bytes, detail: str, value: Any) -> None:
    """COSE headers are read with ``decode_at``: a float or tag 0 there is not the subset."""
    with pytest.raises(CborError) as exc:
        decode_at(b"\xff" + item, 1)
    assert str(exc.value) == detail
    assert loads(item, dcc=True) == value


@pytest.mark.parametrize(("item", "detail", "value"), DCC_ONLY, ids=["float", "date-time-tag"])
def test_cose_unprotected_header_with_a_dcc_only_item_is_malformed(item: bytes, detail: str, value: Any) -> None:
    p = cbor2.dumps({1: -8, 4: b"k1"})
    data = b"\xd2\x84" + bstr_header(len(p)) + p + b"\xa1\x18\x63" + item + b"\x41p\x41s"
    assert _malformed(data) == detail


@pytest.mark.parametrize("content", [[], {}, [["x"]]], ids=["array", "map", "nested"])
def test_dcc_date_time_tag_on_a_container_is_a_cbor_error(content: Any) -> None:
    """Tag 0 takes a text string only; its content is decoded one level deeper, like any child."""
    with pytest.raises(CborError, match="tag 0 is not allowed"):
        loads(cbor2.dumps(cbor2.CBORTag(0, content)), dcc=True)
    deep = cbor2.dumps([[[[[[[cbor2.CBORTag(0, [0])]]]]]]])  # the tag at depth 7, its array at 8
    with pytest.raises(CborError, match="nested too deeply"):
        loads(deep, dcc=True)


# --- COSE_Sign1 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 23, 24, 255, 256, 65535, 65536])
def test_cose_byte_string_heads_are_the_shortest_cbor_form(length: int) -> None:
    """The Sig_structure is signed as bytes: a longer head is another message to python-cwt."""
    assert bstr_header(length) == cbor2.dumps(b"\x00" * length)[: len(bstr_header(length))]
    assert loads(bstr_header(length) + b"\x00" * length) == b"\x00" * length


def test_cose_sig_structure_is_the_rfc_9052_array() -> None:
    protected, payload = cbor2.dumps({1: -8}), b"p" * 30
    assert _sig_structure(protected, payload) == cbor2.dumps(["Signature1", protected, b"", payload])


def test_cose_byte_string_reader_lengths() -> None:
    assert _bstr(b"\x43abc", 0) == (b"abc", 4)
    assert _bstr(b"\x58\x03abc", 0) == (b"abc", 5)
    assert _bstr(b"\x00\x5b" + (3).to_bytes(8, "big") + b"abc", 1) == (b"abc", 13)
    with pytest.raises(ValueError, match="runs past the end"):
        _bstr(b"\x43ab", 0)
    with pytest.raises(ValueError, match="expected a byte string"):
        _bstr(b"\x63abc", 0)
    for initial in (0x5C, 0x5D, 0x5E, 0x5F):  # reserved additional information, then indefinite length
        with pytest.raises(ValueError, match="indefinite-length byte string"):
            _bstr(bytes((initial,)) + b"\x00" * 20, 0)


def _message(protected: dict[int, Any] | bytes, unprotected: dict[Any, Any] | None = None) -> bytes:
    p = protected if isinstance(protected, bytes) else cbor2.dumps(protected)
    return assemble(p, cbor2.dumps(unprotected or {}), b"payload", b"s" * 64)


def _malformed(data: bytes, **kw: Any) -> str:
    with pytest.raises(CodeFormatError) as exc:
        parse(data, **kw)
    assert exc.value.reason is Reason.MALFORMED
    return exc.value.detail


def test_cose_parse_reads_every_part() -> None:
    msg = parse(_message({1: -8, 4: b"k1"}, {99: 1}))
    assert (msg.alg, msg.kid, msg.payload, msg.signature, msg.unprotected) == (
        -8,
        b"k1",
        b"payload",
        b"s" * 64,
        {99: 1},
    )


def test_cose_untagged_and_short_messages() -> None:
    for data in (b"", b"\x84"):
        with pytest.raises(CodeFormatError) as exc:
            parse(data)
        assert exc.value.reason is Reason.UNTAGGED
    assert "4-element array" in _malformed(b"\xd2")
    assert "4-element array" in _malformed(b"\xd2\x83")


def test_cose_trailing_bytes_after_the_message_are_malformed() -> None:
    assert _malformed(_message({1: -8, 4: b"k1"}) + b"\x00") == "trailing bytes after COSE_Sign1"


def test_cose_protected_header_size_cap_is_exact() -> None:
    base = cbor2.dumps({1: -8, 4: b"k1", 100: b""})
    pad = 256 - len(base) - 1  # the pad's own head grows by one byte past 23
    at_cap = cbor2.dumps({1: -8, 4: b"k1", 100: b"x" * pad})
    assert len(at_cap) == 256
    assert parse(_message(at_cap)).kid == b"k1"
    over = cbor2.dumps({1: -8, 4: b"k1", 100: b"x" * (pad + 1)})
    assert _malformed(_message(over)) == "protected header too large"


def _unprotected_of(n_items: int) -> dict[int, Any]:
    """A header map of exactly ``n_items`` CBOR items (odd: map, then key and value pairs)."""
    assert n_items % 2 == 1
    return {100 + i: 0 for i in range((n_items - 1) // 2)}


def test_cose_header_item_caps_are_64_exactly() -> None:
    """Headers are tiny: a crafted header of thousands of items is refused before the signature."""
    at_cap = {**_unprotected_of(61), 500: [0]}  # 61, then key, array and its 0: 64 items
    assert parse(_message({1: -8, 4: b"k1"}, at_cap)).unprotected == at_cap
    over = {**_unprotected_of(61), 500: [0, 0]}
    assert _malformed(_message({1: -8, 4: b"k1"}, over)) == "too many CBOR items"
    protected = {1: -8, 4: b"k1", **_unprotected_of(57), 500: [0]}  # 1 + 4 + 56 + 3 = 64 items
    assert parse(_message(protected)).protected == protected
    assert _malformed(_message({**protected, 500: [0, 0]})) == "too many CBOR items"


def test_cose_headers_must_be_maps() -> None:
    assert _malformed(_message(cbor2.dumps([1, -8]))) == "COSE headers must be maps"
    p = cbor2.dumps({1: -8, 4: b"k1"})
    data = b"\xd2\x84" + bstr_header(len(p)) + p + b"\x80" + b"\x41p" + b"\x41s"
    assert _malformed(data) == "COSE headers must be maps"


@pytest.mark.parametrize("protected", [b"", cbor2.dumps({4: b"k1"}), cbor2.dumps({1: True, 4: b"k1"})])
def test_cose_algorithm_must_be_an_integer_in_the_protected_header(protected: bytes) -> None:
    """``True`` is an int to Python: alg 1 (AES-GCM) must not be spelt as a boolean."""
    assert _malformed(_message(protected)) == "algorithm missing from the protected header"


def test_cose_algorithm_in_the_unprotected_header_is_malformed() -> None:
    """An unprotected alg could be swapped in transit: RFC 9052 §3.1 puts it under the signature."""
    detail = _malformed(_message({1: -8, 4: b"k1"}, {1: -8}))
    assert detail == "algorithm must not be in the unprotected header"


def test_cose_unprotected_kid_only_for_foreign_profiles() -> None:
    data = _message({1: -8}, {4: b"k1"})
    assert _malformed(data) == "kid must be in the protected header only"
    assert parse(data, allow_unprotected_kid=True).kid == b"k1"
    both = _message({1: -8, 4: b"k1"}, {4: b"k2"})
    assert _malformed(both, allow_unprotected_kid=True) == "kid must be in the protected header only"
    assert parse(_message({1: -8, 4: b"k1"}), allow_unprotected_kid=True).kid == b"k1"


@pytest.mark.parametrize("kid", [b"", b"k" * 65, "k1", None])
def test_cose_kid_must_be_1_to_64_bytes(kid: Any) -> None:
    header = {1: -8} if kid is None else {1: -8, 4: kid}
    assert _malformed(_message(header)) == "kid missing or invalid"


def test_cose_kid_of_64_bytes_is_accepted() -> None:
    assert parse(_message({1: -8, 4: b"k" * 64})).kid == b"k" * 64
    assert parse(_message({1: -8, 4: b"k"})).kid == b"k"


def test_cose_verify_names_the_unknown_kid_and_the_mismatched_algorithms(ed_key: SigningKey) -> None:
    msg = parse(sign(b"payload", ed_key))
    with pytest.raises(CodeSignatureError) as exc:
        verify(msg, {})
    assert exc.value.reason is Reason.UNKNOWN_KID and exc.value.detail == f"kid {ed_key.kid.hex()}"
    forged = parse(_message({1: -7, 4: ed_key.kid}))
    with pytest.raises(CodeSignatureError) as exc:
        verify(forged, {ed_key.kid: ed_key.public()})
    assert exc.value.reason is Reason.ALG_MISMATCH and exc.value.detail == "header says ES256, key is EdDSA"
    unknown = parse(_message({1: -999, 4: ed_key.kid}))
    with pytest.raises(CodeSignatureError) as exc:
        verify(unknown, {ed_key.kid: ed_key.public()})
    assert exc.value.reason is Reason.ALG_MISMATCH and exc.value.detail == "header says -999, key is EdDSA"
    assert verify(msg, {ed_key.kid: ed_key.public()}).kid == ed_key.kid


def test_cose_sign_puts_extra_headers_under_the_signature(ed_key: SigningKey) -> None:
    msg = parse(sign(b"payload", ed_key, {Header.TYP: "x"}))
    assert msg.protected == {1: int(ed_key.alg), 4: ed_key.kid, 16: "x"} and msg.unprotected == {}
    verify(msg, {ed_key.kid: ed_key.public()})


# --- QR text: prefix, Base45, zlib ----------------------------------------------------------------


def _text_error(text: str, **kw: Any) -> CodeFormatError:
    with pytest.raises(CodeFormatError) as exc:
        decode(text, PREFIX, **kw)
    return exc.value


def test_text_length_cap_is_the_largest_qr_code_exactly() -> None:
    """4296 characters is version 40-L: nothing longer can come from a camera."""
    body = "0" * (4296 - len(PREFIX))  # 3n+2 characters of Base45
    assert len(decode(PREFIX + body, PREFIX)) == 2861
    err = _text_error(PREFIX + body + "0")
    assert err.reason is Reason.TOO_LARGE and err.detail == "4297 characters, at most 4296"


def test_text_prefix_and_empty_body() -> None:
    err = _text_error("SM2:" + b45encode(b"\xd2"))
    assert err.reason is Reason.WRONG_PREFIX and err.detail == "expected 'SM1:'"
    err = _text_error(PREFIX)
    assert err.reason is Reason.MALFORMED and err.detail == "empty code"


def test_text_raw_message_passes_unless_zlib_is_required() -> None:
    assert decode(PREFIX + b45encode(b"\xd2\x84"), PREFIX) == b"\xd2\x84"
    err = _text_error(PREFIX + b45encode(b"\xd2\x84"), require_zlib=True)
    assert err.reason is Reason.BAD_COMPRESSION and err.detail == "expected a zlib stream"


def test_text_decompression_cap_is_16_kib_exactly() -> None:
    """A zlib bomb stops at the cap, not after inflating."""
    at_cap = zlib.compress(b"\x00" * (16 * 1024), 9)
    assert len(decode(PREFIX + b45encode(at_cap), PREFIX)) == 16 * 1024
    err = _text_error(PREFIX + b45encode(zlib.compress(b"\x00" * (16 * 1024 + 1), 9)))
    assert err.reason is Reason.TOO_LARGE and err.detail == "decompresses to more than 16384 bytes"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (zlib.compress(b"\xd2" * 100)[:-4], "truncated or trailing zlib data"),  # checksum cut off
        (zlib.compress(b"\xd2" * 100) + b"\x00", "truncated or trailing zlib data"),
        (b"\x78\x00", "incorrect header check"),
    ],
)
def test_text_broken_zlib_is_bad_compression(body: bytes, detail: str) -> None:
    err = _text_error(PREFIX + b45encode(body))
    assert err.reason is Reason.BAD_COMPRESSION and detail in err.detail


def test_text_encode_compresses_only_when_shorter_or_forced() -> None:
    raw = bytes(range(40))  # zlib makes it longer
    assert encode(raw, PREFIX) == PREFIX + b45encode(raw)
    forced = encode(raw, PREFIX, force_zlib=True)
    assert b45decode(forced[len(PREFIX) :])[0] == 0x78 and decode(forced, PREFIX, require_zlib=True) == raw
    repetitive = b"\xd2" + b"\x00" * 200
    packed = encode(repetitive, PREFIX)
    assert len(packed) < len(PREFIX + b45encode(repetitive)) and decode(packed, PREFIX) == repetitive


# --- Base45 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("0", "length is 3n+1"),
        ("0000", "length is 3n+1"),
        ("00é", "non-ASCII character"),
        ("00a", "character outside the Base45 alphabet"),
        ("GGW", "group above 65535"),  # 16 + 16*45 + 32*2025 = 65536
        ("GGW000", "group above 65535"),
        ("000GGW000", "group above 65535"),  # a bad group between good ones
        ("000GGW00", "group above 65535"),
        ("V5", "final pair above 255"),  # 31 + 5*45 = 256
    ],
)
def test_base45_invalid_text_is_refused_with_its_reason(text: str, detail: str) -> None:
    with pytest.raises(CodeFormatError) as exc:
        b45decode(text)
    assert exc.value.reason is Reason.BAD_ENCODING and exc.value.detail == detail


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("FGW", b"\xff\xff"),
        ("U5", b"\xff"),
        ("", b""),
        ("00", b"\x00"),
        ("000", b"\x00\x00"),
        ("%69 VD92EX0", b"Hello!!"),
        ("01", b"-"),  # 45: the first final byte whose second digit is 1
    ],
)
def test_base45_largest_values_decode(text: str, data: bytes) -> None:
    """RFC 9285 §4: 65535 is "FGW", 255 is "U5"; the RFC's own example last."""
    assert b45decode(text) == data and b45encode(data) == text


# --- signed list tokens ------------------------------------------------------------------------------


def _list_token(key: SigningKey, claims: Any, typ: str | None = "t") -> bytes:
    extra = {} if typ is None else {Header.TYP: typ}
    return sign(cbor2.dumps(claims), key, extra)


def _list_error(data: bytes, keys: dict[bytes, Any], *, max_items: int = 64) -> ListError:
    with pytest.raises(ListError) as exc:
        open_signed(data, keys, "t", max_items=max_items)
    return exc.value


def test_signed_list_opens_with_its_signer(ed_key: SigningKey) -> None:
    keys = {ed_key.kid: ed_key.public()}
    claims, key = open_signed(_list_token(ed_key, {1: "SH"}), keys, "t", max_items=3)
    assert claims == {1: "SH"} and key.kid == ed_key.kid


def test_signed_list_errors_carry_the_reason_and_detail(ed_key: SigningKey, es_key: SigningKey) -> None:
    keys = {ed_key.kid: ed_key.public()}
    err = _list_error(b"\x84", keys)
    assert err.reason is Reason.LIST_MALFORMED and err.detail == "COSE_Sign1 must carry CBOR tag 18"
    err = _list_error(_list_token(es_key, {1: "SH"}), keys)
    assert err.reason is Reason.LIST_WRONG_SIGNER and err.detail == f"kid {es_key.kid.hex()}"
    err = _list_error(_list_token(ed_key, {1: "SH"}, typ="other"), keys)
    assert err.reason is Reason.LIST_MALFORMED and err.detail == "typ header must be 't'"
    err = _list_error(_list_token(ed_key, {1: "SH"}, typ=None), keys)
    assert err.reason is Reason.LIST_MALFORMED and err.detail == "typ header must be 't'"
    err = _list_error(_list_token(ed_key, [1, 2]), keys)
    assert err.reason is Reason.LIST_MALFORMED and err.detail == "claims are not a map"
    err = _list_error(_list_token(ed_key, {1: [0, 0]}), keys, max_items=4)
    assert err.reason is Reason.LIST_MALFORMED and err.detail == "too many CBOR items"


def test_signed_list_bad_signature_is_the_wrong_signer(ed_key: SigningKey) -> None:
    data = bytearray(_list_token(ed_key, {1: "SH"}))
    data[-1] ^= 1
    err = _list_error(bytes(data), {ed_key.kid: ed_key.public()})
    assert err.reason is Reason.LIST_WRONG_SIGNER and err.detail


def test_signed_list_fields_are_typed_and_booleans_are_not_integers() -> None:
    m = {1: 5, 2: True, 3: "x", 4: None}
    assert get(m, 1, int) == 5 and get(m, 3, (str, bytes)) == "x"
    assert get(m, 9, int, required=False) is None and get(m, 4, int, required=False) is None
    for key, typ, detail in (
        (2, int, "field 2 has the wrong type"),
        (3, int, "field 3 has the wrong type"),
        (9, int, "field 9 missing"),
        (4, str, "field 4 missing"),
    ):
        with pytest.raises(ListError) as exc:
            get(m, key, typ)
        assert exc.value.reason is Reason.LIST_MALFORMED and exc.value.detail == detail
    assert get({1: True}, 1, bool) is True
