"""The EU DCC profile reads floats and date-time tags in its payload; our own formats never do.

DCC issuers put NumericDate floats in iat and exp and tag date-time strings with tag 0, and the DCC
verifiers read both (docs/format.md §7). ``_cbor.loads(..., dcc=True)`` allows exactly that, for the DCC
payload only: these tests pin that SM1: and SMD1: codes, their headers and every list keep refusing them.
"""

from __future__ import annotations

import math
import struct

import cbor2
import pytest

from suishenma import CodeFormatError, KeyRing, Reason, SigningKey, verify
from suishenma._cbor import CborError, loads
from tests.conftest import NOW
from tests.suishenma import forge

FLOATS = (
    pytest.param(cbor2.dumps(1.5, canonical=True), id="half"),
    pytest.param(b"\xfa\x3f\xc0\x00\x00", id="single"),
    pytest.param(b"\xfb" + struct.pack(">d", 1_722_000_000.5), id="double"),
)
DATE_TIME = cbor2.dumps(cbor2.CBORTag(0, "2021-05-30T10:12:22Z"))


@pytest.mark.parametrize("item", FLOATS)
def test_floats_refused_unless_dcc(item: bytes) -> None:
    with pytest.raises(CborError, match="floats"):
        loads(item)
    assert isinstance(loads(item, dcc=True), float)


def test_date_time_tag_refused_unless_dcc() -> None:
    with pytest.raises(CborError, match="tag 0"):
        loads(DATE_TIME)
    assert loads(DATE_TIME, dcc=True) == "2021-05-30T10:12:22Z"


FLOAT_OR_SIMPLE = "CBOR floats and simple values other than false, true and null are not allowed"


@pytest.mark.parametrize(
    ("item", "detail"),
    [
        pytest.param(
            cbor2.dumps(cbor2.CBORTag(0, 1622369542)), "CBOR tag 0 is not allowed here", id="tag-0-on-an-integer"
        ),
        pytest.param(cbor2.dumps(cbor2.CBORTag(1, 1622369542)), "CBOR tag 1 is not allowed here", id="epoch-tag-1"),
        pytest.param(cbor2.dumps(cbor2.CBORTag(4, [-2, 12345])), "CBOR tag 4 is not allowed here", id="decimal-tag-4"),
        pytest.param(cbor2.dumps(cbor2.CBORTag(2, b"\x01" * 9)), "CBOR tag 2 is not allowed here", id="bignum-tag-2"),
        pytest.param(b"\xf9\x7e\x00", FLOAT_OR_SIMPLE, id="half-nan"),
        pytest.param(b"\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00", FLOAT_OR_SIMPLE, id="double-infinity"),
        pytest.param(b"\xf7", FLOAT_OR_SIMPLE, id="undefined"),
    ],
)
def test_dcc_decoding_allows_nothing_else(item: bytes, detail: str) -> None:
    with pytest.raises(CborError) as exc:
        loads(item, dcc=True)
    assert str(exc.value) == detail


def test_dcc_floats_keep_their_value() -> None:
    assert loads(b"\xfb" + struct.pack(">d", 1_722_000_000.5), dcc=True) == 1_722_000_000.5
    assert loads(b"\xf9\x3c\x00", dcc=True) == 1.0
    assert not math.isnan(loads(b"\xfa\x3f\xc0\x00\x00", dcc=True))


@pytest.mark.parametrize(
    ("where", "value"),
    [
        pytest.param("iat", float(NOW), id="float-iat"),
        pytest.param("exp", float(NOW + 60), id="float-exp"),
        pytest.param("private", {0: 0, 9: cbor2.CBORTag(0, "2026-09-21T14:13:20Z")}, id="date-time-in-private-claim"),
        pytest.param("private", {0: 0, 9: 1.0}, id="float-in-private-claim"),
    ],
)
def test_sm1_code_with_float_or_date_time_tag_is_malformed(
    where: str, value: object, ed_key: SigningKey, ring: KeyRing
) -> None:
    """A signed SM1 code that carries a DCC-style float or tag 0 is refused, signature or not."""
    key = {"iat": 6, "exp": 4, "private": -65537}[where]
    claims = forge.claims_map(**{f"k{key}": value}) if key > 0 else {**forge.claims_map(), key: value}
    code = forge.text(forge.sign1(cbor2.dumps(claims), ed_key))
    with pytest.raises(CodeFormatError) as exc:
        verify(code, ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED


def test_sm1_header_with_float_is_malformed(ed_key: SigningKey, ring: KeyRing) -> None:
    message = forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, protected={1: -8, 4: ed_key.kid, 7: 0.5})
    with pytest.raises(CodeFormatError) as exc:
        verify(forge.text(message), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED
