"""QR decoding: zxing-cpp on the frame as it came, then retries chosen by measurement (bench/scanner.py).

Never worse than zxing-cpp alone: the first attempt is zxing-cpp on the unchanged frame (grey, full size),
so every image zxing-cpp reads, the pipeline reads too; ``tests/scanner_app/test_never_worse.py`` keeps
this true on every image set of the benchmark. (A large photograph used to be shrunk before the first
attempt; now a shrunk copy is only a retry.) Text is the code's content (zxing-cpp's plain text mode),
not a display rendering that spells control characters out.

Several codes in one frame: the largest is taken, then the most central among those of about its size
(areas within 10 %), then the smallest text, so a frame always gives the same answer.

Retries run only after zxing-cpp failed, in an order measured on three image sets (zxing's photographed
codes, hard generated 720p frames, phones held in front of a webcam; ``bench/scanner.py --chain``): each
retry kept reads frames the ones before it miss, cheapest gain first; candidates that added nothing were
dropped (the notes above each chain say which). Photographs and crops (800 px or less) get one chain,
camera frames another. When zxing-cpp located a symbol it could not decode, the first camera retries work
on that region only, which is faster and often better than the whole frame. In a live loop most frames
hold no code, so the retries run when zxing-cpp saw a symbol, or on every ``retry_every``-th empty frame;
``budget_ms`` bounds the time one frame spends on them, and the next frame resumes the chain where this
one stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import zxingcpp

from ._types import Frame

try:
    from pyzbar import pyzbar
except ImportError:  # libzbar0 missing: scripts/system-deps installs it; zxing-cpp still works alone
    pyzbar = None

Image = Frame
QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
PLAIN = zxingcpp.TextMode.Plain
PHOTO_MAX_SIDE = 800  # still photographs and crops; camera frames (720p and up) are larger
SAME_SIZE = 0.9  # codes whose areas are within 10 % of the largest count as the same size


@dataclass(frozen=True)
class Decoded:
    text: str | None
    decoder: str  # which pass read it: "zxing", "zxing-fit" (a huge frame, shrunk) or a retry's name; "" if none
    ms: float
    seen: bool  # a symbol was detected, even if not decoded


@dataclass(frozen=True)
class _Read:
    """One code read from an image, with what choosing among several needs."""

    text: str
    area: float
    off_centre: float


def to_gray(frame: Frame) -> Image:
    if frame.ndim == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return frame


def zxing(gray: Image) -> tuple[str | None, bool]:
    """zxing-cpp alone: the chosen code's text (or None), and whether any symbol was seen."""
    text, found = _zxing(gray)
    return text, bool(found)


def zbar(gray: Image) -> str | None:
    """pyzbar alone (None when libzbar is not installed)."""
    if pyzbar is None:
        return None
    shape = gray.shape[:2]
    reads = []
    for d in pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE]):
        quad = np.array([(p.x, p.y) for p in d.polygon], np.float32)
        reads.append(_read(d.data.decode("utf-8", "replace"), quad, shape))
    return _choose(reads)


def _zxing(image: Image, **options: Any) -> tuple[str | None, list[Any]]:
    """The chosen valid code's text, and every symbol zxing-cpp found (valid or not).

    ``try_rotate`` is off: a QR code's finder patterns are found in any orientation, and the rotated passes
    (made for linear barcodes) read nothing more on any benchmark set while costing 0.3 ms of the median
    frame that holds no code.
    """
    options.setdefault("try_rotate", False)
    found = zxingcpp.read_barcodes(image, formats=QR, return_errors=True, text_mode=PLAIN, **options)
    shape = image.shape[:2]
    reads = [_read(b.text, _quad(b.position), shape) for b in found if b.valid]
    return _choose(reads), found


def _quad(position: Any) -> Frame:
    return np.array(
        [(p.x, p.y) for p in (position.top_left, position.top_right, position.bottom_right, position.bottom_left)],
        np.float32,
    )


def _read(text: str, quad: Frame, shape: tuple[int, ...]) -> _Read:
    centre = np.array([shape[1] / 2, shape[0] / 2], np.float32)
    return _Read(text, abs(float(cv2.contourArea(quad))), float(np.linalg.norm(quad.mean(axis=0) - centre)))


def _choose(reads: Sequence[_Read]) -> str | None:
    """The largest code; among those of about its size the most central; then the smallest text."""
    if not reads:
        return None
    if len(reads) == 1:
        return reads[0].text
    largest = max(r.area for r in reads)
    peers = [r for r in reads if r.area >= SAME_SIZE * largest]
    return min(peers, key=lambda r: (round(r.off_centre), r.text)).text


# --- retries ------------------------------------------------------------------------------------------


@dataclass
class _Views:
    """The images retries work on, each made once per frame, on first use."""

    frame: Frame
    gray: Image
    found: list[Any]  # what zxing-cpp saw on the first attempt
    cache: dict[str, Image] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)

    def get(self, name: str, make: Callable[[], Image]) -> Image:
        if name not in self.cache:
            self.cache[name] = make()
        return self.cache[name]

    def value(self, name: str, make: Callable[[], float]) -> float:
        if name not in self.numbers:
            self.numbers[name] = make()
        return self.numbers[name]

    def region(self) -> Image | None:
        """The part of the frame around the symbols zxing-cpp saw but could not read (None if it saw none)."""
        if not self.found:
            return None
        return self.get("region", lambda: _crop(self.gray, np.concatenate([_quad(b.position) for b in self.found])))


def _crop(gray: Image, points: Frame, margin: float = 0.25) -> Image:
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = float((hi - lo).max()) * margin + 8
    x0, y0 = (int(v) for v in np.maximum(lo - pad, 0))
    x1, y1 = (int(v) for v in np.minimum(hi + pad, (gray.shape[1], gray.shape[0])))
    return gray[y0:y1, x0:x1]


def _scaled(gray: Image, factor: float) -> Image:
    interpolation = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
    return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=interpolation)


def _sharpened(gray: Image, sigma: float = 1.0, amount: float = 1.5) -> Image:
    """Unsharp mask: restores the module edges a defocus softened."""
    return cv2.addWeighted(gray, 1 + amount, cv2.GaussianBlur(gray, (0, 0), sigma), -amount, 0)


def _gamma(gray: Image, power: float) -> Image:
    lut = (np.power(np.arange(256) / 255.0, power) * 255 + 0.5).astype(np.uint8)
    return cv2.LUT(gray, lut)


def _opened(gray: Image) -> Image:
    """A 3 x 3 morphological opening: removes a fabric's or screen's fine texture from light modules."""
    return cv2.morphologyEx(gray, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))


def _spectrum(gray: Image) -> Frame:
    """The image's discrete Fourier transform (OpenCV's two-channel complex layout)."""
    return np.asarray(cv2.dft(gray.astype(np.float32) / 255, flags=cv2.DFT_COMPLEX_OUTPUT))


def _wiener(gray: Image, kernel: Frame, noise: float = 0.02, spectrum: Frame | None = None) -> Image:
    """Wiener deconvolution by ``kernel`` (the blur's point spread): F·conj(K) / (|K|² + noise)."""
    image = _spectrum(gray) if spectrum is None else spectrum
    padded = np.zeros(gray.shape[:2], np.float32)
    kh, kw = kernel.shape
    padded[:kh, :kw] = kernel
    padded = np.roll(padded, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    k = cv2.dft(padded, flags=cv2.DFT_COMPLEX_OUTPUT)
    power = k[..., 0] ** 2 + k[..., 1] ** 2 + noise
    restored = cv2.mulSpectrums(image, k, 0, conjB=True) / power[..., None]
    out = np.asarray(cv2.idft(restored, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE))
    pixels: Image = np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
    return pixels


def _gaussian_kernel(sigma: float) -> Frame:
    g = cv2.getGaussianKernel(int(sigma * 6) | 1, sigma)
    return (g @ g.T).astype(np.float32)


def _motion_kernel(length: int, angle: float, defocus: float = 0.0) -> Frame:
    """A straight motion blur of ``length`` pixels at ``angle`` (degrees, as cv2.getRotationMatrix2D turns),
    optionally softened by a defocus of ``defocus`` pixels."""
    size = length + 8
    line = np.zeros((size, size), np.float32)
    line[size // 2, (size - length) // 2 : (size + length) // 2] = 1.0
    turn = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, 1)
    kernel = np.asarray(cv2.warpAffine(line, turn, (size, size)))
    if defocus:
        kernel = np.asarray(cv2.GaussianBlur(kernel, (0, 0), defocus))
    normalised: Frame = kernel / kernel.sum()
    return normalised


def _blur_angle(gray: Image) -> float:
    """The direction a motion blur smeared the image: where the gradients are weakest (structure tensor),
    as the angle cv2.getRotationMatrix2D turns a horizontal line by (image y points down)."""
    image = gray.astype(np.float32)
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    xx, xy, yy = float((gx * gx).sum()), float((gx * gy).sum()), float((gy * gy).sum())
    strongest = 0.5 * np.degrees(np.arctan2(2 * xy, xx - yy))  # in image coordinates, y down
    return float((90 - strongest) % 180)  # the weakest is across it; y down turns the sign


def _deblur_motion(views: _Views, length: int, defocus: float = 0.0) -> str | None:
    """zxing-cpp on the frame deconvolved by a motion blur along the estimated direction."""
    angle = views.value("blur_angle", lambda: _blur_angle(views.gray))
    spectrum = views.get("spectrum", lambda: _spectrum(views.gray))
    return _zxing(_wiener(views.gray, _motion_kernel(length, angle, defocus), 0.02, spectrum))[0]


_DETECTOR = cv2.QRCodeDetector()


def _rectified(views: _Views) -> Image | None:
    """The code cut out of the frame and squared: OpenCV's detector finds its corners, a perspective warp
    undoes the tilt (zxing-cpp's own sampling fails on strong keystones and blur together). Made once."""
    image = views.get("rectified", lambda: _square(views.gray))
    return image if image.size else None


def _square(gray: Image) -> Image:
    """``_rectified``'s work; an empty image when no code was found."""
    nothing = np.zeros((0, 0), np.uint8)
    try:
        ok, points = _DETECTOR.detect(gray)
    except cv2.error:
        return nothing
    if not ok or points is None:
        return nothing
    quad = points.reshape(4, 2).astype(np.float32)
    side = float(max(np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)))
    if side < 21:  # smaller than a version 1 code at one pixel a module
        return nothing
    size = int(min(max(side * 1.3, 240), 1200))
    centre = quad.mean(axis=0)
    source = centre + (quad - centre) * 1.24  # a quiet zone around the symbol
    target = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float32)
    warp = cv2.getPerspectiveTransform(source.astype(np.float32), target)
    return np.asarray(
        cv2.warpPerspective(gray, warp, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    )


_CURVED = cv2.QRCodeDetector()


def _curved(gray: Image) -> str | None:
    """OpenCV's decoder for codes on a curved surface (a cylinder's bend), used only on small images."""
    try:
        text, _points, _straight = _CURVED.detectAndDecodeCurved(gray)
    except cv2.error:
        return None
    return text or None


Retry = tuple[str, Callable[[_Views], str | None]]


def _on_rectified(views: _Views) -> str | None:
    """zxing-cpp on the squared code, as it is and sharpened."""
    square = _rectified(views)
    if square is None:
        return None
    return _zxing(square)[0] or _zxing(_sharpened(square, 2.0))[0]


def _on_region(attempt: Callable[[Image], str | None]) -> Callable[[_Views], str | None]:
    def run(views: _Views) -> str | None:
        region = views.region()
        return None if region is None or min(region.shape[:2]) < 16 else attempt(region)

    return run


# Photographs and crops (zxing's 179 photographed codes; bench/scanner.py --chain): of zxing-cpp's 13 misses,
# a 2x enlargement reads 3, pyzbar on a half-size copy 1 more, OpenCV's curved decoder 1 (a code printed on
# a shirt) and the same on an opened image 1 more. Dropped, as they added nothing after these: a 2.2 gamma
# and pyzbar at full size (each 2 or 3 alone, all among the enlargement's), sharpening, CLAHE, Otsu and
# adaptive thresholds, median and Gaussian blur, zxing-cpp's other binarizers, rotations of a few degrees.
PHOTO_CHAIN: tuple[Retry, ...] = (
    ("zxing-up2", lambda v: _zxing(_scaled(v.gray, 2.0))[0]),
    ("pyzbar-down2", lambda v: zbar(_scaled(v.gray, 0.5))),
    ("opencv-curved", lambda v: _curved(v.gray)),
    ("opencv-curved-opened", lambda v: _curved(_opened(v.gray))),
)

# Camera frames (720p and up), measured on the hard generated frames and the phone-screen set (bench/scanner.py
# --chain): of zxing-cpp's 71 misses there, this chain reads 56, in the order of what each retry adds per
# millisecond after the ones before it. A sharpened crop of the symbol zxing-cpp saw, a fixed threshold, a
# lighter gamma and a 1.5x enlargement are cheap; the code squared by OpenCV's detector reads strong
# keystones; Wiener deconvolution along the estimated direction of a motion blur (lengths 5 to 14 px, with
# and without defocus) reads most of what is left. Dropped, as they added nothing after these: a 2x
# enlargement, CLAHE, gamma 2.2, local contrast normalisation, zxing-cpp's global-histogram binarizer,
# OpenCV's plain, ArUco-based and curved detectors on the whole frame, and pyzbar on a 2x reduction.
CAMERA_CHAIN: tuple[Retry, ...] = (
    ("zxing-region-sharpen", _on_region(lambda r: _zxing(_sharpened(r))[0])),
    ("zxing-fixed", lambda v: _zxing(v.gray, binarizer=zxingcpp.Binarizer.FixedThreshold)[0]),
    ("zxing-gamma0.5", lambda v: _zxing(_gamma(v.gray, 0.5))[0]),
    ("zxing-sharpen", lambda v: _zxing(_sharpened(v.gray))[0]),
    ("zxing-up1.5", lambda v: _zxing(_scaled(v.gray, 1.5))[0]),
    ("zxing-region-deblur-motion13", _on_region(lambda r: _zxing(_wiener(r, _motion_kernel(13, _blur_angle(r))))[0])),
    ("zxing-region-deblur1.6", _on_region(lambda r: _zxing(_wiener(r, _gaussian_kernel(1.6)))[0])),
    ("pyzbar-region-up2", _on_region(lambda r: zbar(_scaled(r, 2.0)))),
    ("zxing-rectified", _on_rectified),
    ("zxing-deblur-motion14", lambda v: _deblur_motion(v, 14)),
    ("zxing-deblur-motion7-soft", lambda v: _deblur_motion(v, 7, 1.2)),
    ("zxing-deblur-motion7", lambda v: _deblur_motion(v, 7)),
    ("zxing-deblur-motion11", lambda v: _deblur_motion(v, 11)),
    ("zxing-deblur-motion5", lambda v: _deblur_motion(v, 5)),
    ("zxing-deblur-motion5-soft", lambda v: _deblur_motion(v, 5, 1.2)),
    ("pyzbar", lambda v: zbar(v.gray)),
)


class Decoder:
    """One frame in, at most one code text out. ``retry``: always (still images), auto (live), never.

    ``budget_ms`` (auto only) bounds the camera retries' time per frame, 0 for no bound; the next frame
    resumes the chain after the last retry tried. ``clock`` (seconds, monotonic) times decoding and the
    budget; tests pass their own, as they may pass their own chains.
    """

    def __init__(
        self,
        retry: str = "auto",
        retry_every: int = 4,
        max_side: int = 1920,
        budget_ms: float = 40.0,
        *,
        photo_chain: Sequence[Retry] = (),
        camera_chain: Sequence[Retry] = (),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if retry not in ("always", "auto", "never"):
            raise ValueError("retry must be always, auto or never")
        self.retry = retry
        self.retry_every = max(1, retry_every)
        self.max_side = max_side
        self.budget_ms = budget_ms
        self.photo_chain = tuple(photo_chain) or PHOTO_CHAIN
        self.camera_chain = tuple(camera_chain) or CAMERA_CHAIN
        self.clock = clock
        self._empty = 0
        self._resume = 0  # where the camera chain resumes on the next frame (auto, over budget)

    def _ms(self, start: float) -> float:
        return (self.clock() - start) * 1000

    def decode(self, frame: Frame) -> Decoded:
        start = self.clock()
        gray = to_gray(frame)
        text, found = _zxing(gray)
        if text is not None:
            self._empty = 0
            self._resume = 0
            return Decoded(text, "zxing", self._ms(start), True)
        seen = bool(found)
        self._empty += 1
        if self.retry == "never" or (self.retry == "auto" and not seen and self._empty % self.retry_every):
            return Decoded(None, "", self._ms(start), seen)
        if max(gray.shape[:2]) > self.max_side:  # huge frames: retries work on a copy that fits
            factor = self.max_side / max(gray.shape[:2])
            gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            text, found = _zxing(gray)
            if text is not None:
                return self._hit(text, "zxing-fit", start)
        views = _Views(frame, gray, found)
        photo = max(gray.shape[:2]) <= PHOTO_MAX_SIDE
        chain = self.photo_chain if photo else self.camera_chain
        bounded = self.retry == "auto" and self.budget_ms > 0 and not photo
        first = self._resume % len(chain) if bounded else 0
        for step in range(len(chain)):
            index = (first + step) % len(chain)
            name, attempt = chain[index]
            text = attempt(views)
            if text is not None:
                return self._hit(text, name, start)
            if bounded and self._ms(start) > self.budget_ms:
                self._resume = index + 1
                break
        return Decoded(None, "", self._ms(start), seen)

    def _hit(self, text: str, name: str, start: float) -> Decoded:
        self._empty = 0
        self._resume = 0
        return Decoded(text, name, self._ms(start), True)
