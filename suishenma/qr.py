"""QR rendering of code text with segno (ISO/IEC 18004): PNG, SVG, or the version alone."""

from __future__ import annotations

from pathlib import Path

import segno

from .errors import UsageError

ECC_LEVELS = ("L", "M", "Q", "H")


def make_qr(text: str, ecc: str = "M") -> segno.QRCode:
    """The smallest QR code holding ``text`` at exactly ``ecc`` (no silent boost).

    Raises:
        UsageError: unknown ECC level, or the text does not fit any QR version.
    """
    if ecc.upper() not in ECC_LEVELS:
        raise UsageError(f"ECC level must be one of {', '.join(ECC_LEVELS)}")
    try:
        return segno.make_qr(text, error=ecc.lower(), boost_error=False)
    except segno.DataOverflowError as exc:
        raise UsageError(f"text does not fit a QR code: {exc}") from None


def qr_version(text: str, ecc: str = "M") -> int:
    """QR version (1-40) the text needs at ``ecc``."""
    version = make_qr(text, ecc).version
    assert isinstance(version, int)
    return version


def save_qr(text: str, out: Path | str, ecc: str = "M", scale: int = 8) -> int:
    """Write a PNG or SVG (by extension) with a 4-module quiet zone; return the QR version.

    Raises:
        UsageError: unsupported extension, bad ECC level, or text too long.
    """
    out = Path(out)
    if out.suffix.lower() not in (".png", ".svg"):
        raise UsageError("output must end in .png or .svg")
    qr = make_qr(text, ecc)
    qr.save(str(out), scale=scale, border=4)
    return int(qr.version)
