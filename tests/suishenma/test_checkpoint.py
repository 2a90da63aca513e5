"""Audit checkpoints: round trip, wrong signer, forged signature, type confusion, malformed fields, caps."""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
import pytest

from suishenma import (
    Alg,
    Checkpoint,
    ListError,
    Reason,
    SigningKey,
    StatusList,
    UsageError,
    parse_checkpoint,
    sign_checkpoint,
    sign_status_list,
)
from suishenma._cose import parse
from suishenma.labels import CHECKPOINT_TYP
from tests.conftest import NOW
from tests.suishenma import forge

HEAD = hashlib.sha256(b"row 42").digest()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def _keys(*keys: SigningKey) -> dict[bytes, Any]:
    return {k.kid: k.public() for k in keys}


def _forged(key: SigningKey, claims: dict[int, Any], typ: str = CHECKPOINT_TYP) -> bytes:
    """A checkpoint correctly signed by ``key`` over whatever claims a broken or hostile signer chose."""
    return forge.sign1(cbor2.dumps(claims), key, protected={1: int(key.alg), 4: key.kid, 16: typ})


def _claims(**ours: Any) -> dict[int, Any]:
    fields = {13: 42, 14: HEAD}
    fields.update({int(k.lstrip("f")): v for k, v in ours.items()})
    return {1: "SH", 6: NOW, -65537: fields}


@pytest.mark.parametrize("alg", [Alg.EdDSA, Alg.ES256])
def test_checkpoint_round_trip(alg: Alg) -> None:
    key = SigningKey.generate(alg)
    cp = parse_checkpoint(sign_checkpoint("SH", 42, HEAD, key, now=NOW), _keys(key))
    assert cp == Checkpoint("SH", 42, HEAD, NOW, key.kid) and cp.head_hex == HEAD.hex()


def test_empty_log_checkpoint_round_trips(key: SigningKey) -> None:
    cp = parse_checkpoint(sign_checkpoint("SH", 0, bytes(32), key, now=NOW), _keys(key))
    assert cp.seq == 0 and cp.head == bytes(32)


def test_checkpoint_signed_by_another_key_is_rejected(key: SigningKey) -> None:
    forger = SigningKey.generate()
    with pytest.raises(ListError) as e:
        parse_checkpoint(sign_checkpoint("SH", 10**6, HEAD, forger, now=NOW), _keys(key))
    assert e.value.reason is Reason.LIST_WRONG_SIGNER and forger.kid.hex() in e.value.detail


def test_checkpoint_with_a_forged_signature_under_the_issuers_kid_is_rejected(key: SigningKey) -> None:
    forger = SigningKey.generate()
    genuine = parse(sign_checkpoint("SH", 42, HEAD, key, now=NOW))
    claims = _claims(f13=10**6)  # a larger log than the issuer ever signed
    fake = forge.sign1(cbor2.dumps(claims), forger, protected=genuine.protected)
    with pytest.raises(ListError) as e:
        parse_checkpoint(fake, _keys(key))
    assert e.value.reason is Reason.LIST_WRONG_SIGNER and "bad_signature" in e.value.detail + e.value.message_en


def test_status_list_signed_by_the_issuer_is_not_a_checkpoint(key: SigningKey) -> None:
    token = sign_status_list(StatusList(16), key, uri="u", issuer="SH", version=1, now=NOW, valid_for=60, ttl=60)
    with pytest.raises(ListError) as e:
        parse_checkpoint(token, _keys(key))
    assert e.value.reason is Reason.LIST_MALFORMED and "typ header" in e.value.detail


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        (_claims(f14=HEAD[:31]), "head must be 32 bytes"),
        (_claims(f14=HEAD.hex()), "wrong type"),
        (_claims(f13=-1), "out of range"),
        (_claims(f13=True), "wrong type"),
        ({1: "SH", 6: NOW, -65537: {14: HEAD}}, "missing"),
        ({1: "SH", -65537: {13: 1, 14: HEAD}}, "missing"),
        ({1: "S\u202eH", 6: NOW, -65537: {13: 1, 14: HEAD}}, "unprintable"),
        ({1: "", 6: NOW, -65537: {13: 1, 14: HEAD}}, "issuer must be"),
    ],
)
def test_malformed_checkpoint_is_rejected_with_its_reason(key: SigningKey, claims: dict[int, Any], says: str) -> None:
    with pytest.raises(ListError) as e:
        parse_checkpoint(_forged(key, claims), _keys(key))
    assert e.value.reason is Reason.LIST_MALFORMED and says in e.value.detail


def test_oversized_checkpoint_is_rejected_before_parsing(key: SigningKey) -> None:
    with pytest.raises(ListError) as e:
        parse_checkpoint(b"\xd2" + bytes(2000), _keys(key))
    assert e.value.reason is Reason.TOO_LARGE


@pytest.mark.parametrize(
    ("issuer", "seq", "head", "now", "detail"),
    [
        ("", 1, HEAD, NOW, "issuer must be text of 1 to 16 characters"),
        ("SH\n", 1, HEAD, NOW, "issuer holds an unprintable character"),
        ("SH", -1, HEAD, NOW, "seq must be 0 to 9223372036854775807"),
        ("SH", 1, HEAD[:16], NOW, "head must be 32 bytes"),
        ("SH", 1, HEAD, -1, "now not negative"),
    ],
)
def test_sign_checkpoint_refuses_impossible_statements(
    key: SigningKey, issuer: str, seq: int, head: bytes, now: int, detail: str
) -> None:
    with pytest.raises(UsageError) as exc:
        sign_checkpoint(issuer, seq, head, key, now=now)
    assert detail in exc.value.detail
