"""QR rendering for the mint endpoint and paper codes.

segno's pure-Python encoder takes about 9 ms a code (most of it choosing the mask) plus 4.5 ms to
write a PNG; zxing-cpp builds the same symbol (byte-identical content, ECC M, smallest version) in
about 0.5 ms, and the PNG and SVG writers below need well under a millisecond more. segno remains the
fallback when zxing-cpp is not installed.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

from suishenma.qr import make_qr

try:
    import zxingcpp
except ImportError:  # pragma: no cover - zxing-cpp is part of the issuer extra
    zxingcpp = None  # type: ignore[assignment]

QUIET = 4  # modules of quiet zone, as ISO/IEC 18004 requires


def qr_matrix(text: str, ecc: str = "M") -> npt.NDArray[np.bool_]:
    """The symbol's modules (True = dark), without quiet zone.

    Raises:
        UsageError: the text does not fit a QR code.
    """
    if zxingcpp is not None:
        try:
            code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ecc)
        except Exception:
            pass
        else:
            img = np.asarray(code.to_image(scale=1, add_quiet_zones=False))
            return img < 128
    return np.array(make_qr(text, ecc).matrix, dtype=bool)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(matrix: npt.NDArray[np.bool_], scale: int = 8) -> bytes:
    """A 1-bit greyscale PNG (RFC 2083) of the matrix with a quiet zone, ``scale`` pixels a module."""
    padded = np.pad(~matrix, QUIET, constant_values=True)  # PNG greyscale: 1 = white
    pixels = padded.repeat(scale, axis=0).repeat(scale, axis=1)
    h, w = pixels.shape
    rows = np.packbits(pixels, axis=1)
    raw = np.hstack([np.zeros((h, 1), dtype=np.uint8), rows]).tobytes()  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )


def svg(matrix: npt.NDArray[np.bool_], scale: int = 8) -> str:
    """An SVG with one path: a horizontal run of dark modules per ``h`` segment."""
    n = matrix.shape[0] + 2 * QUIET
    parts = []
    for y, row in enumerate(matrix):
        padded = np.concatenate(([False], row, [False])).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            parts.append(f"M{start + QUIET} {y + QUIET}h{stop - start}v1h-{stop - start}z")
    size = n * scale
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {n} {n}" '
        f'shape-rendering="crispEdges"><rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/></svg>'
    )
