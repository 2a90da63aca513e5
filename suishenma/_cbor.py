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

Every scan decodes a few small maps, so ``loads`` and ``decode_at`` first try ``_fast``, which
decodes the common shapes inline and only ever returns what the strict ``_Reader`` would return;
on anything else (any refusal, any cap reached) it declines, and ``_Reader`` decides, with its
own detail. tests/suishenma/test_cbor_fast_path.py compares the two.

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
_U16, _U32, _U64 = (struct.Struct(f">{c}").unpack_from for c in "HIQ")
_REPEAT = tuple((None,) * n for n in range(24))  # loops over short containers without making a range


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


class _Declined(Exception):
    """The fast path met something it does not decide; the strict reader decides instead."""


def _fast(data: bytes, pos: int, depth: int, max_depth: int, left: list[int]) -> tuple[Any, int]:
    """Decode the item at ``pos`` like ``_Reader.item`` when it is well formed and within the caps.

    The items scans see (short maps with small integer keys, short strings, integers) are decoded
    here with fewer calls and lookups. ``left[0]`` is how many more items the cap allows: a container
    takes its children's share before any of them is read, so a total over the cap is declined at
    the container that declares it. Anything the strict reader would refuse (and nothing it would
    accept) makes this raise one of ``_DECLINED``: the caller then runs the strict reader, whose
    refusal and message are the ones given.
    """
    initial = data[pos]
    pos += 1
    if initial < 0x18:
        return initial, pos
    info = initial & 0x1F
    if info < 24:
        arg = info
    elif info == 24:
        arg = data[pos]
        pos += 1
    elif info == 25:
        arg = _U16(data, pos)[0]
        pos += 2
    elif info == 26:
        arg = _U32(data, pos)[0]
        pos += 4
    elif info == 27:
        arg = _U64(data, pos)[0]
        pos += 8
    else:
        raise _Declined
    major = initial >> 5
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major == 2 or major == 3:
        end = pos + arg
        if end > len(data):
            raise _Declined
        if major == 2:
            return data[pos:end], end
        return data[pos:end].decode("utf-8"), end
    if major == 4:
        if depth >= max_depth or arg > len(data) - pos:
            raise _Declined
        left[0] -= arg
        if left[0] < 0:
            raise _Declined
        depth += 1
        out: list[Any] = []
        for _ in _REPEAT[arg] if arg < 24 else range(arg):
            initial = data[pos]
            if initial < 0x18:
                out.append(initial)
                pos += 1
            else:
                value, pos = _fast(data, pos, depth, max_depth, left)
                out.append(value)
        return out, pos
    if major == 5:
        return _fast_map(data, pos, arg, depth, max_depth, left)
    if 0xF4 <= initial <= 0xF6:
        return _SIMPLE[info], pos
    raise _Declined


def _fast_map(data: bytes, pos: int, pairs: int, depth: int, max_depth: int, left: list[int]) -> tuple[Any, int]:
    """The map of ``pairs`` pairs whose head ends at ``pos``, at ``depth``: ``_fast`` for maps, with the
    keys and values scans carry most decoded inline.

    Raises:
        _Declined, IndexError, UnicodeDecodeError, struct.error: see ``_fast``.
    """
    if depth >= max_depth or pairs * 2 > len(data) - pos:
        raise _Declined
    left[0] -= pairs * 2
    if left[0] < 0:
        raise _Declined
    depth += 1
    m: dict[Any, Any] = {}
    for _ in _REPEAT[pairs] if pairs < 24 else range(pairs):
        key = data[pos]
        if key < 0x18:  # 0..23
            pos += 1
        elif 0x20 <= key < 0x38:  # -1..-24
            key = 0x1F - key
            pos += 1
        elif key == 0x3A:  # a negative integer with a 4-byte argument: private labels
            key = -1 - _U32(data, pos + 1)[0]
            pos += 5
        else:
            key, pos = _fast(data, pos, depth, max_depth, left)
            if type(key) not in _KEY_TYPES:
                raise _Declined
        if key in m:
            raise _Declined
        initial = data[pos]
        if initial < 0x18:
            m[key] = initial
            pos += 1
        elif initial == 0x1A:  # a 4-byte unsigned integer: times
            m[key] = _U32(data, pos + 1)[0]
            pos += 5
        elif 0x40 <= initial < 0x58:  # a byte string shorter than 24 bytes
            end = pos + initial - 0x3F
            if end > len(data):
                raise _Declined
            m[key] = data[pos + 1 : end]
            pos = end
        elif initial == 0x58:  # a byte string with a one-byte length: keys, signatures
            end = pos + 2 + data[pos + 1]
            if end > len(data):
                raise _Declined
            m[key] = data[pos + 2 : end]
            pos = end
        elif 0x60 <= initial < 0x78:  # a text string shorter than 24 bytes
            end = pos + initial - 0x5F
            if end > len(data):
                raise _Declined
            m[key] = data[pos + 1 : end].decode("utf-8")
            pos = end
        elif 0xA0 <= initial < 0xB8:  # a map of fewer than 24 pairs
            m[key], pos = _fast_map(data, pos + 1, initial - 0xA0, depth, max_depth, left)
        else:
            m[key], pos = _fast(data, pos, depth, max_depth, left)
    return m, pos


_DECLINED = (_Declined, IndexError, UnicodeDecodeError, struct.error)


def decode_at(data: bytes, pos: int, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> tuple[Any, int]:
    """Decode the one item starting at ``pos``; return it and the position just after it.

    Raises:
        CborError: outside the subset, truncated, too deep or too many items.
    """
    if type(data) is bytes and max_items > 0 and pos >= 0:
        try:
            if 0xA0 <= data[pos] < 0xB8:  # a short map: headers
                return _fast_map(data, pos + 1, data[pos] - 0xA0, 0, max_depth, [max_items - 1])
            return _fast(data, pos, 0, max_depth, [max_items - 1])
        except _DECLINED:
            pass
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
    if not dcc and type(data) is bytes and max_items > 0:
        try:
            if 0xA0 <= data[0] < 0xB8:  # a short map: claims, headers
                value, end = _fast_map(data, 1, data[0] - 0xA0, 0, max_depth, [max_items - 1])
            else:
                value, end = _fast(data, 0, 0, max_depth, [max_items - 1])
            if end == len(data):
                return value
        except _DECLINED:
            pass
    value, end = _Reader(data, max_depth, max_items, dcc).item(0, 0)
    if end != len(data):
        raise CborError("trailing bytes after CBOR item")
    return value


def dumps(obj: Any) -> bytes:
    """Deterministic encoding (RFC 8949 §4.2.1): shortest forms; maps keep the order given."""
    return cbor2.dumps(obj)


__all__ = ["MAX_DEPTH", "MAX_ITEMS", "CborError", "decode_at", "dumps", "loads"]
