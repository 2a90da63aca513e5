"""Hand-built COSE messages for attack tests: what a forger or a broken encoder would send."""

from __future__ import annotations

from typing import Any

import cbor2

from suishenma import SigningKey
from suishenma._base45 import b45encode
from suishenma._cose import _sig_structure
from suishenma.labels import CODE_PREFIX


def sign1(
    payload: bytes,
    key: SigningKey,
    *,
    protected: dict[int, Any] | None = None,
    unprotected: dict[int, Any] | None = None,
    tag: int | None = 18,
) -> bytes:
    """A COSE_Sign1 with arbitrary headers, correctly signed by ``key`` over what it says."""
    header = {1: int(key.alg), 4: key.kid} if protected is None else protected
    p = cbor2.dumps(header) if header else b""
    sig = key.cose_key.sign(_sig_structure(p, payload))
    body = [p, unprotected or {}, payload, sig]
    return cbor2.dumps(cbor2.CBORTag(tag, body) if tag is not None else body)


def text(message: bytes, prefix: str = CODE_PREFIX) -> str:
    return prefix + b45encode(message)


def claims_map(**over: Any) -> dict[int, Any]:
    m: dict[int, Any] = {1: "SH", 2: bytes(8), 6: 1_790_000_000, 4: 1_790_000_060, -65537: {0: 0}}
    m.update({int(k.lstrip("k")): v for k, v in over.items()})
    return m
