"""QR decoding: zxing-cpp first, pyzbar as fallback, then retries on rescaled copies — tuned by measurement.

On zxing's 179 photographed codes (bench/scanner.py): zxing-cpp alone reads 165 (0.3 ms), pyzbar 147
(2.9 ms). Of zxing-cpp's 14 misses, pyzbar reads 2, zxing-cpp on a 2x upscale 3, pyzbar on a 2x
downscale 2; other variants tried (global-histogram and fixed binarizers, Otsu, adaptive threshold,
CLAHE, sharpening, median blur) add nothing beyond those. That chain reads 169. Camera frames
(720p and up) get a different chain, measured on generated frames (see ``_retries``).

In a live loop most frames hold no code, so the slow retries run only when they can help: when
zxing-cpp saw a symbol it could not decode, or on every ``retry_every``-th empty frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import zxingcpp

from ._types import Frame

try:
    from pyzbar import pyzbar
except ImportError:  # libzbar0 missing: scripts/system-deps installs it; zxing-cpp still works alone
    pyzbar = None

Image = Frame
QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


@dataclass(frozen=True)
class Decoded:
    text: str | None
    decoder: str  # which pass read it: zxing, pyzbar, zxing-up2, pyzbar-down2; "" when none did
    ms: float
    seen: bool  # a symbol was detected, even if not decoded


def to_gray(frame: Frame) -> Image:
    if frame.ndim == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return frame


def zxing(gray: Image) -> tuple[str | None, bool]:
    found = zxingcpp.read_barcodes(gray, formats=QR, return_errors=True)
    for b in found:
        if b.valid:
            return b.text, True
    return None, bool(found)


def zbar(gray: Image) -> str | None:
    if pyzbar is None:
        return None
    for d in pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE]):
        return str(d.data.decode("utf-8", "replace"))
    return None


class Decoder:
    """One frame in, at most one code text out. ``retry``: always (still images), auto (live), never."""

    def __init__(self, retry: str = "auto", retry_every: int = 4, max_side: int = 1920) -> None:
        if retry not in ("always", "auto", "never"):
            raise ValueError("retry must be always, auto or never")
        self.retry = retry
        self.retry_every = max(1, retry_every)
        self.max_side = max_side
        self._empty = 0

    def decode(self, frame: Frame) -> Decoded:
        start = time.perf_counter()
        gray = to_gray(frame)
        if max(gray.shape[:2]) > self.max_side:  # huge frames: the code is big enough after a downscale
            f = self.max_side / max(gray.shape[:2])
            gray = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        text, seen = zxing(gray)
        if text is not None:
            self._empty = 0
            return Decoded(text, "zxing", _ms(start), True)
        self._empty += 1
        if self.retry == "never" or (self.retry == "auto" and not seen and self._empty % self.retry_every):
            return Decoded(None, "", _ms(start), seen)
        for name, attempt in self._retries(gray):
            text = attempt()
            if text is not None:
                self._empty = 0
                return Decoded(text, name, _ms(start), True)
        return Decoded(None, "", _ms(start), seen)

    def _retries(self, gray: Image) -> list[tuple[str, Callable[[], str | None]]]:
        if max(gray.shape[:2]) <= 800:  # photographs and crops: the chain measured on zxing's images
            return [
                ("pyzbar", lambda: zbar(gray)),
                ("zxing-up2", lambda: zxing(_scaled(gray, 2.0, cv2.INTER_CUBIC))[0]),
                ("pyzbar-down2", lambda: zbar(_scaled(gray, 0.5, cv2.INTER_AREA))),
            ]
        # camera frames: of zxing-cpp's misses on blurred, glared, tilted 720p frames, an unsharp mask
        # recovers about a quarter (3.4 ms) and a 1.5x upscale a quarter (5.7 ms), overlapping;
        # pyzbar adds a few more at 15 ms, so it comes after them
        return [
            ("zxing-sharpen", lambda: zxing(_sharpened(gray))[0]),
            ("zxing-up1.5", lambda: zxing(_scaled(gray, 1.5, cv2.INTER_CUBIC))[0]),
            ("pyzbar", lambda: zbar(gray)),
            ("pyzbar-down2", lambda: zbar(_scaled(gray, 0.5, cv2.INTER_AREA))),
        ]


def _sharpened(gray: Image) -> Image:
    return cv2.addWeighted(gray, 2.0, cv2.GaussianBlur(gray, (0, 0), 2), -1.0, 0)


def _scaled(gray: Image, factor: float, interpolation: int) -> Image:
    return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=interpolation)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
