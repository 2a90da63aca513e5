"""COSE_Sign1 (RFC 9052 §4.2), stricter than python-cwt and on the fast path of every scan.

python-cwt's key objects do the cryptography (EdDSA, ES256 with raw r||s, PS256). This module
decides what is acceptable before a key is asked: CBOR tag 18 is required, the message is a
4-element array of the right types, the payload is attached, and the algorithm and key id come
from the protected header (an unprotected kid is allowed only for foreign profiles that put it
there, such as the EU DCC). The key is chosen by kid from a caller-given mapping (unknown kid:
rejected) and the header algorithm must equal that key's algorithm. There is no mode that skips
verification.

The fixed outer structure and the Sig_structure (RFC 9052 §4.4) are laid out here directly:
python-cwt's generic ``COSE`` encoder and decoder re-encode headers and cost more than a fifth of
an Ed25519 verification, which is the whole budget of a scan (bench/core.py). Tests check that
every message made here decodes with python-cwt's ``COSE`` and the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from cbor2 import CBORTag

from . import _cbor
from .errors import CodeFormatError, CodeSignatureError, Reason
from .keys import SigningKey, VerificationKey
from .labels import Alg, Header

SIGN1_TAG = 18
# Headers are tiny; a code's whole message is capped by its caller.
_MAX_HEADER_BYTES = 256

_SIG1_CONTEXT = b"\x6aSignature1"  # text(10) "Signature1"
_EMPTY_AAD = b"\x40"
_SIG1_HEAD = b"\x84" + _SIG1_CONTEXT  # array(4), "Signature1"
_ALG, _KID = int(Header.ALG), int(Header.KID)


# The heads of byte strings shorter than 256 bytes, shortest form: every header, payload and
# signature of a code has one, and a lookup costs less than building them.
_SHORT_BSTR_HEADS = tuple(bytes((0x40 | n,)) if n < 24 else bytes((0x58, n)) for n in range(256))


def bstr_header(length: int) -> bytes:
    """The CBOR head of a byte string of ``length`` bytes (RFC 8949 §3.1), shortest form."""
    if 0 <= length < 0x100:
        return _SHORT_BSTR_HEADS[length]
    if length < 24:
        return bytes((0x40 | length,))
    if length < 0x100:
        return bytes((0x58, length))
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    return b"\x5a" + length.to_bytes(4, "big")


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """Sig_structure = ["Signature1", protected, external_aad = h'', payload] (RFC 9052 §4.4)."""
    return b"".join(
        (_SIG1_HEAD, bstr_header(len(protected)), protected, _EMPTY_AAD, bstr_header(len(payload)), payload)
    )


class Sign1(NamedTuple):
    """A parsed, not yet verified COSE_Sign1 message (a tuple: built on every scan)."""

    protected_bytes: bytes
    unprotected: dict[Any, Any]
    protected: dict[Any, Any]
    alg: int
    kid: bytes
    payload: bytes
    signature: bytes

    def to_cbor_tag(self) -> CBORTag:
        """The message as a cbor2 tag, for python-cwt's decoder."""
        return CBORTag(SIGN1_TAG, [self.protected_bytes, self.unprotected, self.payload, self.signature])


def sign(payload: bytes, key: SigningKey, extra_protected: Mapping[int, Any] | None = None) -> bytes:
    """Tagged COSE_Sign1 over ``payload``, alg and kid in the protected header, empty unprotected
    header (RFC 9052 §4.2, §4.4)."""
    header: dict[int, Any] = {int(Header.ALG): int(key.alg), int(Header.KID): key.kid}
    if extra_protected:
        header.update({int(k): v for k, v in extra_protected.items()})
    protected = _cbor.dumps(header)
    signature = key.cose_key.sign(_sig_structure(protected, payload))
    return assemble(protected, b"\xa0", payload, signature)


def assemble(protected: bytes, unprotected: bytes, payload: bytes, signature: bytes) -> bytes:
    """A tagged COSE_Sign1 from its parts; ``unprotected`` is an encoded map (RFC 9052 §4.2)."""
    return b"".join(
        (
            b"\xd2\x84",
            bstr_header(len(protected)),
            protected,
            unprotected,
            bstr_header(len(payload)),
            payload,
            bstr_header(len(signature)),
            signature,
        )
    )


def _bstr(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read a definite-length byte string at ``pos``; return it and the position after it.

    Raises:
        ValueError: not a byte string, or it runs past the end.
    """
    initial = data[pos]
    if 0x40 <= initial < 0x58:  # the length in the head
        end = pos + initial - 0x3F
        if end > len(data):
            raise ValueError("byte string runs past the end")
        return data[pos + 1 : end], end
    if initial == 0x58 and pos + 2 <= len(data):  # a one-byte length
        end = pos + 2 + data[pos + 1]
        if end > len(data):
            raise ValueError("byte string runs past the end")
        return data[pos + 2 : end], end
    if initial >> 5 != 2:
        raise ValueError("expected a byte string")
    info = initial & 0x1F
    if info < 24:
        start, length = pos + 1, info
    elif info <= 27:
        size = 1 << (info - 24)
        start = pos + 1 + size
        length = int.from_bytes(data[pos + 1 : start], "big")
    else:
        raise ValueError("indefinite-length byte string")
    end = start + length
    if end > len(data):
        raise ValueError("byte string runs past the end")
    return data[start:end], end


_HEADER_CACHE: dict[bytes, dict[Any, Any]] = {}
_HEADER_CACHE_SIZE = 256
_IMMUTABLE = (int, bytes, str, bool, type(None))


def _protected_header(p_bytes: bytes) -> Any:
    """The decoded protected header. Every code of one issuer key carries the same bytes, so a
    header of integers and strings is decoded once and kept, keyed on its exact bytes; each call
    gets its own copy, so no caller can change what the next one sees. Anything else (a nested
    map or array, not a map) is decoded every time, and failures are never kept.

    Raises:
        ValueError: not one item of the CBOR subset.
    """
    cached = _HEADER_CACHE.get(p_bytes)
    if cached is not None:
        return cached.copy()
    header = _cbor.loads(p_bytes, max_items=64)
    if type(header) is dict and all(type(v) in _IMMUTABLE for v in header.values()):
        if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[p_bytes] = header.copy()
    return header


def parse(data: bytes, *, allow_unprotected_kid: bool = False, dcc_headers: bool = False) -> Sign1:
    """Parse a tagged COSE_Sign1 structure (RFC 9052 §4.2) without verifying it.

    The fixed outer layout (tag 18, array of 4, byte strings) is read directly, which is both
    stricter and faster than a generic decoder; only the headers go through CBOR decoding.

    ``dcc_headers`` applies the EU DCC header rules (eHealth Network, "Electronic Health Certificate
    Container Format" §3.3.3; dgc-testdata cases CO18–CO23): the algorithm and the key id are each
    taken from the protected header, or from the unprotected one when the protected header lacks
    them, and an unprotected copy of a protected parameter is ignored. Only the DCC profile sets it.

    Raises:
        CodeFormatError: UNTAGGED when tag 18 is missing; MALFORMED for anything
            else that is not a COSE_Sign1 with an attached payload and an algorithm in the
            protected header.
    """
    if not data or data[0] != 0xD2:  # major type 6, value 18
        raise CodeFormatError(Reason.UNTAGGED, "COSE_Sign1 must carry CBOR tag 18")
    if len(data) < 2 or data[1] != 0x84:
        raise CodeFormatError(Reason.MALFORMED, "COSE_Sign1 is not a 4-element array")
    try:
        size = len(data)
        p_bytes, pos = _bstr(data, 2)
        if pos < size and data[pos] == 0xA0:  # the usual empty unprotected header
            unprotected: Any = {}
            pos += 1
        else:
            unprotected, pos = _cbor.decode_at(data, pos, max_items=64)
        payload, pos = _bstr(data, pos)
        signature, pos = _bstr(data, pos)
        if pos != size:
            raise ValueError("trailing bytes after COSE_Sign1")
        if len(p_bytes) > _MAX_HEADER_BYTES:
            raise ValueError("protected header too large")
        protected = _protected_header(p_bytes) if p_bytes else {}
    except (ValueError, IndexError) as exc:
        raise CodeFormatError(Reason.MALFORMED, str(exc) or "truncated") from None
    if type(protected) is not dict or type(unprotected) is not dict:
        raise CodeFormatError(Reason.MALFORMED, "COSE headers must be maps")
    alg = protected.get(_ALG)
    if alg is None and dcc_headers:
        alg = unprotected.get(_ALG)
    if type(alg) is not int:  # the decoder makes no other int subclass than bool
        raise CodeFormatError(Reason.MALFORMED, "algorithm missing from the protected header")
    if unprotected and _ALG in unprotected and not dcc_headers:
        raise CodeFormatError(Reason.MALFORMED, "algorithm must not be in the unprotected header")
    kid = protected.get(_KID)
    if kid is None and (allow_unprotected_kid or dcc_headers):
        kid = unprotected.get(_KID)
    elif unprotected and _KID in unprotected and not dcc_headers:
        raise CodeFormatError(Reason.MALFORMED, "kid must be in the protected header only")
    if type(kid) is not bytes or not 1 <= len(kid) <= 64:
        raise CodeFormatError(Reason.MALFORMED, "kid missing or invalid")
    # tuple.__new__ directly: the same Sign1 as Sign1(...), without the generated __new__'s extra call.
    return tuple.__new__(Sign1, (p_bytes, unprotected, protected, alg, kid, payload, signature))


def verify(msg: Sign1, keys: Mapping[bytes, VerificationKey]) -> VerificationKey:
    """Verify ``msg`` with the key its kid names; return that key.

    The header algorithm must be the key's algorithm; for an Ed25519 key both EdDSA (-8) and the
    fully-specified Ed25519 (-19, RFC 9864) name it.

    Raises:
        CodeSignatureError: UNKNOWN_KID, ALG_MISMATCH or BAD_SIGNATURE (RFC 9052 §4.4).
    """
    key = keys.get(msg.kid)
    if key is None:
        raise CodeSignatureError(Reason.UNKNOWN_KID, f"kid {msg.kid.hex()}")
    # RFC 9864 §2.2: the fully-specified Ed25519 (-19) is accepted wherever EdDSA (-8) on Ed25519 is.
    if msg.alg != key.alg and not (msg.alg == Alg.Ed25519 and key.alg == Alg.EdDSA):
        name = Alg(msg.alg).name if msg.alg in Alg._value2member_map_ else str(msg.alg)
        raise CodeSignatureError(Reason.ALG_MISMATCH, f"header says {name}, key is {key.alg.name}")
    key.verify_signature(_sig_structure(msg.protected_bytes, msg.payload), msg.signature)
    return key
