"""The fully-specified Ed25519 algorithm identifier (RFC 9864, -19) is accepted beside EdDSA (-8).

Issuers elsewhere move to -19; a verifier that refused it would refuse their codes and lists. We still
mint -8 (docs/format.md §7): every verifier deployed today knows it.
"""

from __future__ import annotations

import cbor2
import pytest

from suishenma import (
    Alg,
    Claims,
    CodeSignatureError,
    IssuerEntry,
    KeyRing,
    ListError,
    Reason,
    SigningKey,
    Status,
    StatusList,
    UsageError,
    mint,
    parse_status_list,
    parse_trust_list,
    verify,
)
from suishenma._base45 import b45decode
from suishenma.labels import STATUS_LIST_TYP, TRUST_LIST_TYP
from tests.conftest import NOW
from tests.suishenma import forge

DAY = 86400


def _code(key: SigningKey, alg: int) -> str:
    return forge.text(forge.sign1(cbor2.dumps(forge.claims_map()), key, protected={1: alg, 4: key.kid}))


@pytest.mark.parametrize("alg", [-8, -19], ids=["EdDSA", "Ed25519"])
def test_ed25519_code_verifies_under_either_identifier(ed_key: SigningKey, ring: KeyRing, alg: int) -> None:
    v = verify(_code(ed_key, alg), ring, now=NOW)
    assert v.alg is Alg.EdDSA and v.kid == ed_key.kid


def test_fully_specified_ed25519_on_a_p256_key_is_an_algorithm_mismatch(es_key: SigningKey, ring: KeyRing) -> None:
    """-19 names Ed25519 only: it cannot smuggle another key type past the alg check."""
    with pytest.raises(CodeSignatureError) as exc:
        verify(_code(es_key, -19), ring, now=NOW)
    assert exc.value.reason is Reason.ALG_MISMATCH and exc.value.detail == "header says Ed25519, key is ES256"


def test_we_mint_eddsa_and_cannot_sign_as_ed25519(ed_key: SigningKey) -> None:
    message = b45decode(mint(Claims.dynamic(bytes(8), Status.GREEN, NOW), ed_key)[len("SM1:") :])
    assert cbor2.loads(cbor2.loads(message).value[0])[1] == -8
    with pytest.raises(UsageError, match="cannot sign with Ed25519"):
        SigningKey.generate(Alg.Ed25519)


def test_trust_list_entry_naming_ed25519_is_read_as_eddsa(ed_key: SigningKey) -> None:
    root = SigningKey.generate()
    entry = IssuerEntry(ed_key.public(), "SH", NOW - DAY, NOW + DAY).to_cbor()
    entry[1] = -19
    claims = {1: "root", 6: NOW, 4: NOW + DAY, -65537: {10: 1, 11: [entry]}}
    token = forge.sign1(cbor2.dumps(claims), root, protected={1: -19, 4: root.kid, 16: TRUST_LIST_TYP})
    tl = parse_trust_list(token, root.public(), now=NOW)
    assert tl.issuers[0].key.alg is Alg.EdDSA
    for alg in (-8, -19):
        assert verify(_code(ed_key, alg), tl.keyring, now=NOW).claims.issuer == "SH"


def test_trust_list_entry_naming_ed25519_for_a_p256_key_is_malformed(es_key: SigningKey) -> None:
    root = SigningKey.generate()
    entry = IssuerEntry(es_key.public(), "SH", NOW - DAY, NOW + DAY).to_cbor()
    entry[1] = -19
    claims = {1: "root", 6: NOW, 4: NOW + DAY, -65537: {10: 1, 11: [entry]}}
    token = forge.sign1(cbor2.dumps(claims), root, protected={1: -8, 4: root.kid, 16: TRUST_LIST_TYP})
    with pytest.raises(ListError) as exc:
        parse_trust_list(token, root.public(), now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED


def test_status_list_signed_as_ed25519_accepted(ed_key: SigningKey) -> None:
    lst = StatusList(8)
    claims = {
        1: "SH",
        2: "u",
        6: NOW,
        4: NOW + DAY,
        65534: 60,
        65533: {"bits": 1, "lst": lst.compress()},
        -65537: {10: 1, 12: 8},
    }
    token = forge.sign1(cbor2.dumps(claims), ed_key, protected={1: -19, 4: ed_key.kid, 16: STATUS_LIST_TYP})
    assert parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW).size == 8
