"""Property-based: decoders raise only the project's own errors, and never accept a mutated code."""

from __future__ import annotations

import contextlib

import base45
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suishenma import (
    Claims,
    KeyRing,
    ListError,
    SigningKey,
    Status,
    StatusList,
    SuishenmaError,
    _cbor,
    inspect,
    mint,
    parse_status_list,
    parse_trust_list,
    sign_status_list,
    verify,
)
from suishenma._base45 import ALPHABET, b45decode, b45encode
from suishenma.trustlist import IssuerEntry, sign_trust_list
from tests.conftest import NOW, SUBJECT

KEY = SigningKey.generate()
RING = KeyRing.of(KEY.public())
CODE = mint(Claims.dynamic(SUBJECT, Status.GREEN, NOW, name="张小三", id_number="310101199001011234"), KEY)
MESSAGE = b45decode(CODE[4:])
TRUST = sign_trust_list([IssuerEntry(KEY.public(), "SH", NOW - 10, NOW + 10)], KEY, version=1, now=NOW, ttl=60)
STATUS = sign_status_list(StatusList(64, 2), KEY, uri="u", issuer="SH", version=1, now=NOW, valid_for=60, ttl=60)
FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_ours(text: str) -> None:
    for call in (lambda: verify(text, RING, now=NOW), lambda: inspect(text)):
        with contextlib.suppress(SuishenmaError):
            call()


@FUZZ
@given(st.text(max_size=600))
def test_arbitrary_text_raises_only_our_errors(text: str) -> None:
    _only_ours(text)
    _only_ours("SM1:" + text)


@FUZZ
@given(st.text(alphabet=ALPHABET, max_size=600))
def test_arbitrary_base45_raises_only_our_errors(text: str) -> None:
    _only_ours("SM1:" + text)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_behind_the_prefix_raise_only_our_errors(data: bytes) -> None:
    _only_ours("SM1:" + b45encode(data))
    _only_ours("SM1:" + b45encode(b"\xd2\x84" + data))


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    m = bytearray(MESSAGE)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
        i = draw(st.integers(0, max(len(m) - 1, 0)))
        if kind == "flip" and m:
            m[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            m.insert(i, draw(st.integers(0, 255)))
        elif kind == "delete" and m:
            del m[i]
        elif kind == "truncate":
            del m[i:]
        elif m:
            m[i] = draw(st.integers(0, 255))
    return bytes(m)


@FUZZ
@given(mutations())
def test_mutated_code_is_never_accepted(message: bytes) -> None:
    if message == MESSAGE:
        return
    with pytest.raises(SuishenmaError):
        verify("SM1:" + b45encode(message), RING, now=NOW)


@FUZZ
@given(st.binary(max_size=300))
def test_base45_roundtrip_matches_reference(data: bytes) -> None:
    text = b45encode(data)
    assert text == base45.b45encode(data).decode()
    assert b45decode(text) == data


@FUZZ
@given(st.binary(max_size=200))
def test_cbor_scan_never_raises_anything_but_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        _cbor.loads(data)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 7))
def test_mutated_lists_raise_only_list_errors(pos: int, bit: int) -> None:
    for token, parse in (
        (TRUST, lambda b: parse_trust_list(b, KEY.public(), now=NOW)),
        (STATUS, lambda b: parse_status_list(b, {KEY.kid: KEY.public()}, now=NOW)),
    ):
        tampered = bytearray(token)
        tampered[pos % len(tampered)] ^= 1 << bit
        with pytest.raises(ListError):
            parse(bytes(tampered))
