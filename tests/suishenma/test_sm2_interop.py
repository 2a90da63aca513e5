"""Interop with a second, independent SM2 implementation (gmssl-fast: GmSSL, in the dev extra).

Both directions, over real codes: a code we mint verifies with GmSSL over its Sig_structure
(RFC 9052 §4.4), and a code whose signature GmSSL made verifies with us.
"""

from __future__ import annotations

import cbor2
import gmssl_fast
import pytest

from suishenma import Alg, Claims, CodeSignatureError, KeyRing, Reason, SigningKey, Status, mint, verify
from suishenma._base45 import b45decode
from suishenma._cose import _sig_structure
from suishenma.sm2 import SM2PrivateKey
from tests.conftest import NOW
from tests.suishenma import forge


@pytest.fixture(scope="module")
def pair() -> tuple[SigningKey, gmssl_fast.SM2]:
    key = SigningKey.generate(Alg.SM2)
    private = key.private_key
    assert isinstance(private, SM2PrivateKey)
    theirs = gmssl_fast.SM2(private.private_bytes_raw().hex(), private.public_key().point.hex())
    return key, theirs


def test_our_sm2_codes_verify_with_gmssl(pair: tuple[SigningKey, gmssl_fast.SM2]) -> None:
    key, theirs = pair
    for status in Status:
        protected, _, payload, sig = cbor2.loads(b45decode(mint(Claims.dynamic(bytes(8), status, NOW), key)[4:])).value
        assert theirs.verify(_sig_structure(protected, payload), sig)


def test_gmssl_signed_codes_verify_with_us(pair: tuple[SigningKey, gmssl_fast.SM2]) -> None:
    key, theirs = pair
    ring = KeyRing.of(key.public())
    payload = cbor2.dumps(forge.claims_map())
    protected = cbor2.dumps({1: int(Alg.SM2), 4: key.kid})
    for _ in range(5):
        sig = theirs.sign(_sig_structure(protected, payload))
        code = forge.text(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, sig])))
        assert verify(code, ring, now=NOW).kid == key.kid


def test_gmssl_signature_over_other_bytes_is_rejected_by_us(pair: tuple[SigningKey, gmssl_fast.SM2]) -> None:
    key, theirs = pair
    payload = cbor2.dumps(forge.claims_map())
    protected = cbor2.dumps({1: int(Alg.SM2), 4: key.kid})
    sig = theirs.sign(payload)  # the payload alone, not its Sig_structure
    code = forge.text(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, sig])))
    with pytest.raises(CodeSignatureError) as exc:
        verify(code, KeyRing.of(key.public()), now=NOW)
    assert exc.value.reason is Reason.BAD_SIGNATURE
