"""The wallet's home-screen icon: a QR symbol in white on the green of a green code, drawn as a PNG here so
that no binary image lives in the repository."""

from __future__ import annotations

import struct
import zlib
from functools import cache

import numpy as np

from issuer.qr_images import qr_matrix

GREEN = (0x1A, 0x9E, 0x3F)
WHITE = (0xFF, 0xFF, 0xFF)


@cache
def icon_png(size: int) -> bytes:
    """A ``size`` x ``size`` RGB PNG: the green field, and a white QR symbol in its middle three fifths (inside
    the safe zone of a maskable icon)."""
    matrix = qr_matrix("SUISHENMA")
    n = matrix.shape[0]
    module = max(1, size * 3 // 5 // n)
    inner = np.repeat(np.repeat(matrix, module, axis=0), module, axis=1)
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = GREEN
    top = (size - inner.shape[0]) // 2
    box = image[top : top + inner.shape[0], top : top + inner.shape[1]]
    box[inner] = WHITE
    return _png(image)


def _png(image: np.ndarray) -> bytes:  # type: ignore[type-arg]
    """An 8-bit RGB PNG (ISO/IEC 15948): signature, IHDR, one IDAT of filter-0 rows, IEND."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
