"""CBOR decoding with caps checked before anything is allocated (RFC 8949).

``scan`` walks the item headers of untrusted bytes without building objects: it rejects nesting
deeper than ``max_depth``, more than ``max_items`` items, declared lengths beyond the end of the
input, indefinite lengths and trailing bytes. Only then does cbor2 (C extension) build objects.
"""

from __future__ import annotations

from typing import Any

import cbor2

MAX_DEPTH = 8
MAX_ITEMS = 4096


def scan(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> None:
    """Check that ``data`` is exactly one well-formed, definite-length CBOR item within the caps.

    Raises:
        ValueError: with a short reason; callers wrap it in their own error family.
    """
    if item_end(data, 0, max_depth=max_depth, max_items=max_items) != len(data):
        raise ValueError("trailing bytes after CBOR item")


def item_end(data: bytes, pos: int, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> int:
    """Position just past the one CBOR item starting at ``pos``, checking the caps on the way.

    Raises:
        ValueError: truncated, indefinite-length, too deep or too many items.
    """
    end = len(data)
    items = 0
    # Stack of remaining child counts, one per open container.
    stack: list[int] = [1]
    while stack:
        if stack[-1] == 0:
            stack.pop()
            continue
        stack[-1] -= 1
        if pos >= end:
            raise ValueError("truncated CBOR")
        items += 1
        if items > max_items:
            raise ValueError("too many CBOR items")
        initial = data[pos]
        major, info = initial >> 5, initial & 0x1F
        pos += 1
        if info < 24:
            arg = info
        elif info <= 27:
            size = 1 << (info - 24)
            if pos + size > end:
                raise ValueError("truncated CBOR")
            arg = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        else:
            raise ValueError("indefinite or reserved CBOR length")
        if major in (2, 3):
            if arg > end - pos:
                raise ValueError("CBOR string runs past the end")
            pos += arg
        elif major in (4, 5):
            count = arg * 2 if major == 5 else arg
            if count > end - pos:
                raise ValueError("CBOR container larger than its input")
            if len(stack) > max_depth:
                raise ValueError("CBOR nested too deeply")
            stack.append(count)
        elif major == 6:
            if len(stack) > max_depth:
                raise ValueError("CBOR nested too deeply")
            stack.append(1)
    return pos


def loads(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Any:
    """``scan`` then decode (cbor2's own limits are looser: nesting 400, no item count).

    Raises:
        ValueError: malformed or over a cap (cbor2's own errors are converted).
    """
    scan(data, max_depth=max_depth, max_items=max_items)
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid CBOR: {exc}") from None


def loads_small(data: bytes, *, limit: int = 1024) -> Any:
    """Decode at most ``limit`` bytes without a pre-scan.

    For inputs this small the caps hold by construction: cbor2 never preallocates from a
    declared length, caps nesting at 400, and cannot make more items than there are bytes.

    Raises:
        ValueError: over ``limit``, or malformed.
    """
    if len(data) > limit:
        raise ValueError(f"CBOR item larger than {limit} bytes")
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid CBOR: {exc}") from None


def dumps(obj: Any) -> bytes:
    """Deterministic encoding (RFC 8949 §4.2.1): shortest forms; maps keep the order given."""
    return cbor2.dumps(obj)


__all__ = ["MAX_DEPTH", "MAX_ITEMS", "dumps", "item_end", "loads", "loads_small", "scan"]
