"""QR text transport: prefix + Base45 (RFC 9285) of a COSE message, zlib (RFC 1950) when shorter.

A raw COSE_Sign1 starts with 0xD2 (tag 18); a zlib stream starts with 0x78. The first byte tells
the decoder which it has, so no flag byte is spent.
"""

from __future__ import annotations

import zlib

from ._base45 import b45decode, b45encode
from .errors import CodeFormatError, Reason

# Largest alphanumeric payload of any QR code (version 40, ECC L).
MAX_TEXT = 4296
# Largest message after decompression; our codes are under 300 bytes, EU DCCs under 4 KB.
MAX_MESSAGE = 16 * 1024
_ZLIB_FIRST = 0x78


def encode(message: bytes, prefix: str, *, force_zlib: bool = False) -> str:
    """``prefix`` + Base45 of ``message``, compressed only when that is shorter (or forced)."""
    packed = zlib.compress(message, 9)
    body = packed if force_zlib or len(packed) < len(message) else message
    return prefix + b45encode(body)


def decode(text: str, prefix: str, *, require_zlib: bool = False) -> bytes:
    """Inverse of ``encode``, capping the text and the decompressed size before allocating.

    Raises:
        CodeFormatError: TOO_LARGE, WRONG_PREFIX, BAD_ENCODING or BAD_COMPRESSION.
    """
    if len(text) > MAX_TEXT:
        raise CodeFormatError(Reason.TOO_LARGE, f"{len(text)} characters, at most {MAX_TEXT}")
    if not text.startswith(prefix):
        raise CodeFormatError(Reason.WRONG_PREFIX, f"expected {prefix!r}")
    body = b45decode(text[len(prefix) :])
    if not body:
        raise CodeFormatError(Reason.MALFORMED, "empty code")
    if body[0] != _ZLIB_FIRST:
        if require_zlib:
            raise CodeFormatError(Reason.BAD_COMPRESSION, "expected a zlib stream")
        return body
    inflater = zlib.decompressobj()
    try:
        message = inflater.decompress(body, MAX_MESSAGE)
    except zlib.error as exc:
        raise CodeFormatError(Reason.BAD_COMPRESSION, str(exc)) from None
    if inflater.unconsumed_tail:
        raise CodeFormatError(Reason.TOO_LARGE, f"decompresses to more than {MAX_MESSAGE} bytes")
    if not inflater.eof or inflater.unused_data:
        raise CodeFormatError(Reason.BAD_COMPRESSION, "truncated or trailing zlib data")
    return message
