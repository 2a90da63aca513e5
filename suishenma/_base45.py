"""Base45 (RFC 9285) with lookup tables: about five times faster than a per-character loop.

Encoding looks up the 3-character text of each 16-bit word in a table built on first use;
decoding maps characters to digits with one ``bytes.translate`` call and validates in bulk.
"""

from __future__ import annotations

import sys
from array import array
from functools import cache

from .errors import CodeFormatError, Reason

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_BIG_ENDIAN = sys.byteorder == "big"
_INVALID = 0xFF
# bytes.translate table: ASCII character -> its Base45 digit, anything else -> _INVALID.
_DIGITS = bytes(ALPHABET.find(chr(c)) if chr(c) in ALPHABET else _INVALID for c in range(256))


@cache
def _triples() -> list[str]:
    return [ALPHABET[n % 45] + ALPHABET[(n // 45) % 45] + ALPHABET[n // 2025] for n in range(65536)]


def b45encode(data: bytes) -> str:
    """Encode bytes as Base45 text (RFC 9285 §4)."""
    triples = _triples()
    even = len(data) & ~1
    words = array("H", data[:even])
    if not _BIG_ENDIAN:
        words.byteswap()
    text = "".join(map(triples.__getitem__, words))
    if even != len(data):
        last = data[-1]
        text += ALPHABET[last % 45] + ALPHABET[last // 45]
    return text


def b45decode(text: str) -> bytes:
    """Decode Base45 text (RFC 9285 §4); the caller caps ``len(text)`` first.

    Every group is decoded at once with big-integer arithmetic: the digits of each position
    (c, d, e) are spread into 32-bit slots of one integer, then ``c + 45 d + 2025 e`` is three
    C-level operations whatever the length. A slot above 65535 is an invalid group.

    Raises:
        CodeFormatError: BAD_ENCODING for a character outside the alphabet, a group whose value
            is too large, or a length of the form 3n+1.
    """
    groups, rest = divmod(len(text), 3)
    if rest == 1:
        raise CodeFormatError(Reason.BAD_ENCODING, "length is 3n+1")
    try:
        digits = text.encode("ascii").translate(_DIGITS)
    except UnicodeEncodeError:
        raise CodeFormatError(Reason.BAD_ENCODING, "non-ASCII character") from None
    if _INVALID in digits:
        raise CodeFormatError(Reason.BAD_ENCODING, "character outside the Base45 alphabet")
    slots = bytearray(4 * groups)
    total = 0
    for offset, weight in ((0, 1), (1, 45), (2, 2025)):
        slots[3::4] = digits[offset : 3 * groups : 3]
        total += weight * int.from_bytes(slots, "big")
    words = total.to_bytes(4 * groups, "big")
    if words[1::4].count(0) != groups:
        raise CodeFormatError(Reason.BAD_ENCODING, "group above 65535")
    out = bytearray(2 * groups + (rest == 2))
    out[0 : 2 * groups : 2] = words[2::4]
    out[1 : 2 * groups : 2] = words[3::4]
    if rest == 2:
        last = digits[-2] + 45 * digits[-1]
        if last > 255:
            raise CodeFormatError(Reason.BAD_ENCODING, "final pair above 255")
        out[-1] = last
    return bytes(out)
