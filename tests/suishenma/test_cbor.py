"""The strict CBOR subset (docs/format.md §3.1): what a hostile passer-by's crafted CBOR meets.

Each rejection is asserted by its detail, so that a test cannot pass because an earlier check (a
size cap, a missing algorithm) happened to stop the input for another reason.
"""

from __future__ import annotations

import cbor2
import pytest

from suishenma import CodeFormatError, KeyRing, Reason, SigningKey, inspect, verify
from suishenma._cbor import CborError, decode_at, loads
from suishenma.cli import main
from tests.conftest import NOW
from tests.suishenma import forge


def _nested(depth: int) -> bytes:
    """``depth`` arrays, one inside the other, around a 0."""
    return b"\x81" * depth + b"\x00"


def _huge_decimal(tag: int) -> cbor2.CBORTag:
    """Tag 4 (decimal fraction) or 5 (bigfloat) with an exponent no decimal context can hold."""
    return cbor2.CBORTag(tag, [2**63 - 1, 1])


def test_subset_roundtrip() -> None:
    value = {1: "SH", 2: b"\x00\x01", -65537: {0: 0, "bits": [1, -2, 2**64 - 1, -(2**64)]}, 7: [True, False, None]}
    assert loads(cbor2.dumps(value)) == value


@pytest.mark.parametrize(
    ("item", "detail"),
    [
        (cbor2.dumps(_huge_decimal(4)), "tag 4 is not allowed"),
        (cbor2.dumps(_huge_decimal(5)), "tag 5 is not allowed"),
        (cbor2.dumps(2**70), "tag 2 is not allowed"),  # bignum
        (cbor2.dumps(cbor2.CBORTag(1, 1_790_000_000)), "tag 1 is not allowed"),
        (cbor2.dumps(cbor2.CBORTag(18, [])), "tag 18 is not allowed"),  # COSE's tag belongs to _cose only
        (cbor2.dumps(1.5), "floats"),
        (b"\xf7", "floats and simple values"),  # undefined
        (b"\xf0", "floats and simple values"),  # simple value 16
        (b"\x9f\x01\xff", "indefinite-length"),
        (b"\x5f\x41\x00\xff", "indefinite-length"),
        (b"\x1c", "reserved"),
        (b"\xa2\x01\x00\x01\x01", "duplicate CBOR map key 1"),
        (b"\xa2\x61a\x00\x61a\x01", "duplicate CBOR map key 'a'"),
        (b"\xa1\x81\x00\x00", "keys must be integers or strings"),
        (b"\x62\xff\xfe", "not valid UTF-8"),
        (b"\x01\x02", "trailing bytes"),
        (b"\x5a\xff\xff\xff\xff", "runs past the end"),
        (b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00", "larger than its input"),
        (b"\x19\x01", "truncated"),
        (b"", "truncated"),
    ],
)
def test_outside_the_subset_rejected(item: bytes, detail: str) -> None:
    with pytest.raises(CborError, match=detail):
        loads(item)


def test_depth_limit_is_exact() -> None:
    """docs/format.md §3: nesting is at most 8 containers deep."""
    assert loads(_nested(8)) is not None
    with pytest.raises(CborError, match="nested too deeply"):
        loads(_nested(9))


def test_item_cap_holds_before_decoding() -> None:
    with pytest.raises(CborError, match="too many CBOR items"):
        loads(cbor2.dumps(list(range(100))), max_items=50)
    with pytest.raises(CborError, match="larger than 10 bytes"):
        loads(cbor2.dumps(b"x" * 20), max_bytes=10)


def test_decode_at_returns_the_end() -> None:
    data = b"\xff" + cbor2.dumps({1: 2}) + b"\xee"
    assert decode_at(data, 1) == ({1: 2}, len(data) - 1)


# --- the same constructs inside codes --------------------------------------------------------------


@pytest.mark.parametrize("tag", [4, 5])
def test_unsigned_code_with_decimal_tag_in_protected_header_is_malformed(tag: int, ring: KeyRing) -> None:
    """The attack: a ~50-character code, no valid signature, that crashed every verifier."""
    protected = cbor2.dumps({1: -8, 4: b"\x00" * 4, 99: _huge_decimal(tag)})
    text = forge.text(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"", b""])))
    assert len(text) < 60
    for call in (lambda: verify(text, ring, now=NOW), lambda: inspect(text)):
        with pytest.raises(CodeFormatError) as exc:
            call()
        assert exc.value.reason is Reason.MALFORMED and f"tag {tag} is not allowed" in exc.value.detail


@pytest.mark.parametrize("tag", [4, 5])
def test_decimal_tag_in_unprotected_header_is_malformed(tag: int, ed_key: SigningKey, ring: KeyRing) -> None:
    msg = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, unprotected={99: _huge_decimal(tag)})
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and f"tag {tag} is not allowed" in exc.value.detail


@pytest.mark.parametrize("tag", [4, 5])
def test_decimal_tag_in_signed_claims_is_malformed(tag: int, ed_key: SigningKey, ring: KeyRing) -> None:
    msg = forge.sign1(cbor2.dumps(forge.claims_map(k99=_huge_decimal(tag))), ed_key)
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(msg), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and f"tag {tag} is not allowed" in exc.value.detail


def test_cli_verify_and_inspect_report_the_crafted_code(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    protected = cbor2.dumps({1: -8, 4: b"\x00" * 4, 99: _huge_decimal(4)})
    text = forge.text(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"", b""])))
    key = SigningKey.generate()
    pub = f"{tmp_path}/k.pub"
    with open(pub, "wb") as f:
        f.write(key.public().pem())
    assert main(["verify", text, "--key", pub]) == 1
    assert "INVALID: malformed" in capsys.readouterr().out
    assert main(["inspect", text]) == 1
    err = capsys.readouterr().err
    assert "cannot decode: malformed" in err and "tag 4 is not allowed" in err


def test_duplicate_claim_keys_are_malformed_not_last_wins(ed_key: SigningKey, ring: KeyRing) -> None:
    """Two status entries: one decoder reads green, another red. A code may not say both."""
    claims = cbor2.dumps(forge.claims_map())
    assert claims.endswith(b"\x3a\x00\x01\x00\x00\xa1\x00\x00")  # {-65537: {0: 0}}
    twice = claims[:-3] + b"\xa2\x00\x02\x00\x00"  # {-65537: {0: 2, 0: 0}}
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(forge.sign1(twice, ed_key)), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and "duplicate CBOR map key 0" in exc.value.detail


def test_indefinite_length_claims_are_malformed(ed_key: SigningKey, ring: KeyRing) -> None:
    claims = cbor2.dumps(forge.claims_map())
    indefinite = b"\xbf" + claims[1:] + b"\xff"  # the same map, indefinite length
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(forge.sign1(indefinite, ed_key)), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and "indefinite-length" in exc.value.detail


FLOAT_OR_SIMPLE = "CBOR floats and simple values other than false, true and null are not allowed"


# --- every cap and length check is exact (docs/format.md §3.1) --------------------------------------


def test_item_cap_counts_every_item_exactly() -> None:
    """An array of n - 1 integers is n items; inline map keys count as items too."""
    array = cbor2.dumps(list(range(49)))  # 50 items
    assert loads(array, max_items=50) == list(range(49))
    with pytest.raises(CborError, match=r"^too many CBOR items$"):
        loads(array, max_items=49)
    small_keys = cbor2.dumps({0: 0, 1: 1})  # 5 items: the map, two keys, two values
    assert loads(small_keys, max_items=5) == {0: 0, 1: 1}
    with pytest.raises(CborError, match=r"^too many CBOR items$"):
        loads(small_keys, max_items=4)
    with pytest.raises(CborError, match=r"^too many CBOR items$"):
        loads(cbor2.dumps({0: 0, 1: 1, 2: 2}), max_items=4)  # over the cap on an inline key
    assert loads(cbor2.dumps([[1]]), max_items=3) == [[1]]
    assert decode_at(array, 0, max_items=50) == (list(range(49)), len(array))
    with pytest.raises(CborError, match=r"^too many CBOR items$"):
        decode_at(array, 0, max_items=49)
    assert decode_at(_nested(3), 0, max_depth=3)[0] == [[[0]]]
    with pytest.raises(CborError, match=r"^CBOR nested too deeply$"):
        decode_at(_nested(3), 0, max_depth=2)


def test_byte_cap_is_inclusive() -> None:
    nine = cbor2.dumps(b"x" * 8)
    assert len(nine) == 9 and loads(nine, max_bytes=9) == b"x" * 8
    with pytest.raises(CborError, match=r"^CBOR item larger than 8 bytes$"):
        loads(nine, max_bytes=8)


@pytest.mark.parametrize(
    ("item", "value"),
    [
        (b"\x17", 23),
        (b"\x18\x18", 24),
        (b"\x19\x01\x00", 256),  # the argument ends exactly at the end of the input
        (b"\x1a\x00\x01\x00\x00", 65536),
        (b"\x1b\x00\x00\x00\x01\x00\x00\x00\x00", 2**32),
        (b"\x3b\xff\xff\xff\xff\xff\xff\xff\xff", -(2**64)),
        (b"\x41\x00", b"\x00"),  # a string that ends exactly at the end of the input
        (b"\x63\xc3\xa9a", "éa"),
        (b"\x80", []),
        (b"\xa0", {}),
        (b"\xa1\x00\x00", {0: 0}),  # a map that fills its input exactly
        (b"\x81\x00", [0]),
        (b"\xa1\x17\x01", {23: 1}),  # the largest key read inline
        (b"\xa1\x18\x19\x00", {25: 0}),  # a one-byte-argument key is not read inline
        (b"\xa1\x18\x18\x05", {24: 5}),
        (b"\xa1\x20\x01", {-1: 1}),
        (b"\xa1\x41k\x01", {b"k": 1}),  # byte-string keys are allowed
        (b"\xa2\x61a\x00\x61b\xf6", {"a": 0, "b": None}),
        (b"\x83\xf4\xf5\xf6", [False, True, None]),
    ],
)
def test_subset_items_decode_to_their_values(item: bytes, value: object) -> None:
    assert loads(item) == value
    assert type(loads(item)) is type(value)


@pytest.mark.parametrize(
    ("item", "detail"),
    [
        (b"\x19\x01", "truncated CBOR"),
        (b"\x1b\x00\x00\x00\x00\x00\x00\x00", "truncated CBOR"),
        (b"\x82\x18\x01", "truncated CBOR"),  # the second child starts at the end
        (b"\xa1\x18\x19", "truncated CBOR"),  # a key and no value
        (b"\x42\x00", "CBOR string runs past the end"),
        (b"\x61", "CBOR string runs past the end"),
        (b"\x82\x00", "CBOR container larger than its input"),
        (b"\xa2\x00\x00\x00", "CBOR container larger than its input"),  # 2 pairs need 4 bytes
        (b"\xa1\xf5\x00", "CBOR map keys must be integers or strings"),  # true
        (b"\xa1\xf6\x00", "CBOR map keys must be integers or strings"),  # null
        (b"\xa1\xa0\x00", "CBOR map keys must be integers or strings"),  # a map
        (b"\xf8\x14", FLOAT_OR_SIMPLE),
        (b"\xf8\x16", FLOAT_OR_SIMPLE),  # null in the two-byte form is not well-formed
        (b"\xf4\x00", "trailing bytes after CBOR item"),
        (b"\x1d", "reserved CBOR additional information"),
        (b"\x1e", "reserved CBOR additional information"),
        (b"\x1f", "indefinite-length CBOR is not allowed"),
        (b"\x7f\xff", "indefinite-length CBOR is not allowed"),
        (b"\xc0\x61a", "CBOR tag 0 is not allowed here"),
        (b"\xd8\x12\x80", "CBOR tag 18 is not allowed here"),
        (b"\xa2\x18\x19\x00\x18\x19\x01", "duplicate CBOR map key 25"),
    ],
)
def test_refusals_name_exactly_what_is_wrong(item: bytes, detail: str) -> None:
    with pytest.raises(CborError) as exc:
        loads(item)
    assert str(exc.value) == detail
