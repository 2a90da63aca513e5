"""The few DER shapes SM2 key files need (ITU-T X.690 §8, §10), written and read strictly.

pyca/cryptography does not know the SM2 curve, so it cannot read or write SM2 key files. The
structures involved are small and fixed (SubjectPublicKeyInfo, PKCS#8, RFC 5915 ECPrivateKey,
RFC 8018 PBES2), so this module encodes them directly: definite lengths in their shortest form,
no trailing bytes, sizes capped by the caller's key-file cap.
"""

from __future__ import annotations

SEQUENCE = 0x30
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element (X.690 §8.1): tag, shortest definite length, content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


def seq(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def integer(value: int) -> bytes:
    """A non-negative INTEGER in its minimal two's-complement form (X.690 §8.3)."""
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER (X.690 §8.19)."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))


def read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """The element at ``pos``: (tag, content, position after it).

    Raises:
        ValueError: truncated, indefinite or non-minimal length, or a multi-byte tag.
    """
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not used here")
    pos += 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if size == 0 or size > 4 or pos + size > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + size], "big")
        if length < 0x80 or data[pos] == 0:
            raise ValueError("non-minimal DER length")
        pos += size
    end = pos + length
    if end > len(data):
        raise ValueError("DER element runs past the end")
    return tag, data[pos:end], end


def items(data: bytes, tag: int = SEQUENCE) -> list[tuple[int, bytes]]:
    """The elements inside one constructed element that fills ``data`` exactly.

    Raises:
        ValueError: not one element of ``tag``, trailing bytes, or a malformed element inside.
    """
    t, content, end = read(data)
    if t != tag or end != len(data):
        raise ValueError(f"expected one DER element of tag {tag:#x}")
    out, pos = [], 0
    while pos < len(content):
        t, c, pos = read(content, pos)
        out.append((t, c))
    return out


def expect(item: tuple[int, bytes], tag: int) -> bytes:
    """The content of ``item`` if its tag is ``tag``.

    Raises:
        ValueError: another tag.
    """
    if item[0] != tag:
        raise ValueError(f"expected DER tag {tag:#x}, found {item[0]:#x}")
    return item[1]


def read_int(item: tuple[int, bytes]) -> int:
    """A non-negative, minimally encoded INTEGER.

    Raises:
        ValueError: not an INTEGER, negative or not minimal.
    """
    c = expect(item, INTEGER)
    if not c or c[0] & 0x80 or (len(c) > 1 and c[0] == 0 and not c[1] & 0x80):
        raise ValueError("bad DER INTEGER")
    return int.from_bytes(c, "big")
