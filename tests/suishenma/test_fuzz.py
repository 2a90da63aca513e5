"""Property-based: decoders raise only the project's own errors, and never accept a mutated code."""

from __future__ import annotations

import contextlib

import base45
import cbor2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from suishenma import (
    Claims,
    KeyRing,
    ListError,
    Reason,
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
from suishenma.labels import STATUS_LIST_TYP, TRUST_LIST_TYP
from suishenma.trustlist import IssuerEntry, sign_trust_list
from tests.conftest import NOW, SUBJECT
from tests.suishenma import forge

KEY = SigningKey.generate()
RING = KeyRing.of(KEY.public())
CODE = mint(Claims.dynamic(SUBJECT, Status.GREEN, NOW, name="张小三", id_number="310101199001011234"), KEY)
MESSAGE = b45decode(CODE[4:])
TRUST = sign_trust_list([IssuerEntry(KEY.public(), "SH", NOW - 10, NOW + 10)], KEY, version=1, now=NOW, ttl=60)
STATUS = sign_status_list(StatusList(64, 2), KEY, uri="u", issuer="SH", version=1, now=NOW, valid_for=60, ttl=60)
# A mutated code fails its framing, structure or signature; it never reaches the claims or time checks.
MUTATED_CODE = {
    Reason.BAD_COMPRESSION,
    Reason.MALFORMED,
    Reason.UNTAGGED,
    Reason.UNKNOWN_KID,
    Reason.ALG_MISMATCH,
    Reason.BAD_SIGNATURE,
}
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
    with pytest.raises(SuishenmaError) as exc:
        verify("SM1:" + b45encode(message), RING, now=NOW)
    assert exc.value.reason in MUTATED_CODE, exc.value.reason


@FUZZ
@given(st.binary(max_size=300))
def test_base45_roundtrip_matches_reference(data: bytes) -> None:
    text = b45encode(data)
    assert text == base45.b45encode(data).decode()
    assert b45decode(text) == data


@FUZZ
@given(st.binary(max_size=200))
def test_cbor_decoder_never_raises_anything_but_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        _cbor.loads(data)


# Anything a general CBOR encoder can write: every tag number (decimal fractions and bigfloats with
# huge exponents among them), integers beyond 64 bits, floats, decimals, undefined, deep nesting.
_TAGS = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 18, 21, 24, 32, 61, 258, 55799]), st.integers(0, 2**64 - 1))
_LEAVES = st.one_of(
    st.integers(-(2**80), 2**80),
    st.floats(),
    st.decimals(),
    st.binary(max_size=12),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.just(cbor2.undefined),
    st.builds(
        lambda tag, e, m: cbor2.CBORTag(tag, [e, m]),
        st.sampled_from([4, 5]),
        st.integers(-(2**64) + 1, 2**64 - 1),
        st.integers(-(2**70), 2**70),
    ),
)


def _containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.integers(-70000, 70000), st.text(max_size=3)), children, max_size=4),
        st.builds(cbor2.CBORTag, _TAGS, children),
    )


CBOR_VALUES = st.recursive(_LEAVES, _containers, max_leaves=16)


def _dumps(value: object) -> bytes:
    try:
        return cbor2.dumps(value)
    except Exception:  # a value the general encoder itself cannot write
        assume(False)
        raise


@FUZZ
@given(CBOR_VALUES, st.sampled_from(["protected", "unprotected", "claim", "ours", "payload"]))
def test_crafted_cbor_anywhere_in_a_signed_code_raises_only_our_errors(value: object, where: str) -> None:
    _dumps(value)
    protected: dict[int, object] = {1: int(KEY.alg), 4: KEY.kid}
    unprotected: dict[int, object] = {}
    claims = forge.claims_map()
    if where == "protected":
        protected[99] = value
    elif where == "unprotected":
        unprotected[99] = value
    elif where == "claim":
        claims[99] = value
    elif where == "ours":
        claims[-65537] = {0: 0, 9: value}
    payload = _dumps(value) if where == "payload" else cbor2.dumps(claims)
    try:
        text = forge.text(forge.sign1(payload, KEY, protected=protected, unprotected=unprotected))
    except Exception:
        assume(False)
        raise
    _only_ours(text)


@FUZZ
@given(CBOR_VALUES, st.booleans())
def test_crafted_cbor_in_a_signed_list_raises_only_list_errors(value: object, trust: bool) -> None:
    typ = TRUST_LIST_TYP if trust else STATUS_LIST_TYP
    for payload in (_dumps(value), cbor2.dumps({1: "SH", 6: NOW, 4: NOW + 60, -65537: value, 65533: value})):
        token = forge.sign1(payload, KEY, protected={1: int(KEY.alg), 4: KEY.kid, 16: typ})
        with contextlib.suppress(ListError):
            if trust:
                parse_trust_list(token, KEY.public(), now=NOW)
            else:
                parse_status_list(token, {KEY.kid: KEY.public()}, now=NOW)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 7))
def test_mutated_lists_raise_only_list_errors(pos: int, bit: int) -> None:
    for token, parse in (
        (TRUST, lambda b: parse_trust_list(b, KEY.public(), now=NOW)),
        (STATUS, lambda b: parse_status_list(b, {KEY.kid: KEY.public()}, now=NOW)),
    ):
        tampered = bytearray(token)
        tampered[pos % len(tampered)] ^= 1 << bit
        with pytest.raises(ListError) as exc:
            parse(bytes(tampered))
        assert exc.value.reason in (Reason.LIST_MALFORMED, Reason.LIST_WRONG_SIGNER), exc.value.reason
