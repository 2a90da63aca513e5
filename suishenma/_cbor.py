"""A strict CBOR decoder for untrusted bytes (RFC 8949), and the deterministic encoder.

Our formats use a small subset of CBOR: unsigned and negative integers, byte and text strings,
arrays, maps keyed by integers or strings, and false / true / null. The decoder accepts exactly
that subset and nothing else, so no input can reach a general decoder's tag handlers (tag 4 and
5 with a huge exponent make cbor2 raise ``decimal.InvalidOperation``), bignums, floats or
indefinite lengths. COSE's tag 18 is read by ``_cose`` itself, never here.

It also enforces, before anything is allocated: nesting at most ``max_depth``, at most
``max_items`` items, declared lengths within the input, no duplicate map keys (RFC 8949 §5.6:
a duplicate makes a map invalid) and no trailing bytes. Every failure is a ``CborError`` (a
``ValueError``), whatever the input.

One caller widens the subset: the EU DCC profile (``dcc=True``, docs/format.md §7) reads finite floats
(NumericDate ``iat``/``exp`` and whole-number doses that issuers encode as floats) and tag 0 on a text
string (RFC 8949 §3.4.1; the DCC schema says "Validators MUST be able to read both tagged and untagged
data"). Nothing else passes, and no other format sets it.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import cbor2

MAX_DEPTH = 8
MAX_ITEMS = 4096

_SIMPLE = {20: False, 21: True, 22: None}
_KEY_TYPES = (int, str, bytes)


class CborError(ValueError):
    """The bytes are not one well-formed item of the subset, or break a cap."""


_FLOAT_FORMATS = {25: ">e", 26: ">f", 27: ">d"}
_DATE_TIME_TAG = 0  # RFC 8949 §3.4.1: standard date/time string


class _Reader:
    __slots__ = ("data", "dcc", "end", "items", "max_depth", "max_items")

    def __init__(self, data: bytes, max_depth: int, max_items: int, dcc: bool = False) -> None:
        self.data = data
        self.end = len(data)
        self.items = 0
        self.max_depth = max_depth
        self.max_items = max_items
        self.dcc = dcc

    def item(self, pos: int, depth: int) -> tuple[Any, int]:
        """Decode the item at ``pos``; return it and the position after it.

        Raises:
            CborError: anything outside the subset or over a cap.
        """
        if pos >= self.end:
            raise CborError("truncated CBOR")
        self.items += 1
        if self.items > self.max_items:
            raise CborError("too many CBOR items")
        initial = self.data[pos]
        major, info = initial >> 5, initial & 0x1F
        pos += 1
        if info < 24:
            arg = info
        elif info <= 27:
            size = 1 << (info - 24)
            if pos + size > self.end:
                raise CborError("truncated CBOR")
            arg = int.from_bytes(self.data[pos : pos + size], "big")
            pos += size
        elif info == 31:
            raise CborError("indefinite-length CBOR is not allowed")
        else:
            raise CborError("reserved CBOR additional information")
        if major == 0:
            return arg, pos
        if major == 1:
            return -1 - arg, pos
        if major == 2 or major == 3:
            if arg > self.end - pos:
                raise CborError("CBOR string runs past the end")
            raw = self.data[pos : pos + arg]
            if major == 2:
                return raw, pos + arg
            try:
                return raw.decode("utf-8"), pos + arg
            except UnicodeDecodeError:
                raise CborError("CBOR text is not valid UTF-8") from None
        if major == 4 or major == 5:
            if depth >= self.max_depth:
                raise CborError("CBOR nested too deeply")
            # Each child takes at least one byte: a count beyond the input is a lie.
            if (arg * 2 if major == 5 else arg) > self.end - pos:
                raise CborError("CBOR container larger than its input")
            data, item = self.data, self.item
            if major == 4:
                out: list[Any] = []
                for _ in range(arg):
                    value, pos = item(pos, depth + 1)
                    out.append(value)
                return out, pos
            m: dict[Any, Any] = {}
            for _ in range(arg):
                # Claims maps are keyed by small integers: decoded inline, the common case costs no call.
                if pos < self.end and data[pos] < 0x18:
                    key = data[pos]
                    pos += 1
                    self.items += 1
                    if self.items > self.max_items:
                        raise CborError("too many CBOR items")
                else:
                    key, pos = item(pos, depth + 1)
                    if type(key) not in _KEY_TYPES:
                        raise CborError("CBOR map keys must be integers or strings")
                if key in m:
                    raise CborError(f"duplicate CBOR map key {key!r}")
                m[key], pos = item(pos, depth + 1)
            return m, pos
        if major == 6:
            if self.dcc and arg == _DATE_TIME_TAG:
                value, pos = self.item(pos, depth + 1)
                if type(value) is str:
                    return value, pos
            raise CborError(f"CBOR tag {arg} is not allowed here")
        if info < 24 and arg in _SIMPLE:
            return _SIMPLE[arg], pos
        if self.dcc and info in _FLOAT_FORMATS:
            (number,) = struct.unpack(_FLOAT_FORMATS[info], arg.to_bytes(1 << (info - 24), "big"))
            if math.isfinite(number):
                return float(number), pos
        raise CborError("CBOR floats and simple values other than false, true and null are not allowed")


def decode_at(data: bytes, pos: int, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> tuple[Any, int]:
    """Decode the one item starting at ``pos``; return it and the position just after it.

    Raises:
        CborError: outside the subset, truncated, too deep or too many items.
    """
    return _Reader(data, max_depth, max_items).item(pos, 0)


def loads(
    data: bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    max_bytes: int | None = None,
    dcc: bool = False,
) -> Any:
    """Decode ``data``, which must be exactly one item of the subset within the caps.

    ``dcc`` is for an EU DCC payload only: it also admits finite floats and tag 0 on a text string
    (returned as the string).

    Raises:
        CborError: over ``max_bytes``, outside the subset, over a cap, or trailing bytes.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise CborError(f"CBOR item larger than {max_bytes} bytes")
    value, end = _Reader(data, max_depth, max_items, dcc).item(0, 0)
    if end != len(data):
        raise CborError("trailing bytes after CBOR item")
    return value


def dumps(obj: Any) -> bytes:
    """Deterministic encoding (RFC 8949 §4.2.1): shortest forms; maps keep the order given."""
    return cbor2.dumps(obj)


__all__ = ["MAX_DEPTH", "MAX_ITEMS", "CborError", "decode_at", "dumps", "loads"]
