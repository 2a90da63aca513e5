"""Our COSE_Sign1 layer and python-cwt's full COSE encoder/decoder agree, both ways."""

from __future__ import annotations

import pytest
from cwt import COSE
from cwt.exceptions import VerifyError

from suishenma import Alg, CodeSignatureError, Reason, SigningKey, _cose


@pytest.mark.parametrize("alg", [Alg.EdDSA, Alg.ES256])
def test_our_messages_decode_with_python_cwt(alg: Alg) -> None:
    key = SigningKey.generate(alg)
    for payload in (b"", b"x", bytes(range(256)) * 300):
        message = _cose.sign(payload, key)
        assert COSE.new().decode(message, key.public().cose_key) == payload


@pytest.mark.parametrize("alg", [Alg.EdDSA, Alg.ES256])
def test_python_cwt_messages_verify_with_ours(alg: Alg) -> None:
    key = SigningKey.generate(alg)
    cose = COSE.new(alg_auto_inclusion=False, kid_auto_inclusion=False)
    message = cose.encode_and_sign(b"\xa1\x01bSH", key.cose_key, protected={1: int(alg), 4: key.kid})
    msg = _cose.parse(message)
    assert _cose.verify(msg, {key.kid: key.public()}).kid == key.kid
    tampered = bytearray(message)
    tampered[-70] ^= 1  # inside the payload or signature
    with pytest.raises(CodeSignatureError) as exc:
        _cose.verify(_cose.parse(bytes(tampered)), {key.kid: key.public()})
    assert exc.value.reason is Reason.BAD_SIGNATURE
    with pytest.raises(VerifyError, match="Failed to verify"):
        cose.decode(bytes(tampered), key.public().cose_key)
