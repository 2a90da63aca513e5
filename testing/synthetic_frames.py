"""Synthetic camera frames of a QR code: perspective, blur, glare, noise, JPEG artefacts, a phone screen
held at an angle. For tests, the benchmark and the demo; deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from scanner_app._types import Frame
from suishenma.qr import make_qr

W, H = 1280, 720
DEGRADATIONS = ("perspective", "blur", "motion", "glare", "noise", "jpeg", "dim", "phone")


def code_image(text: str, module_px: int = 8) -> Frame:
    """The code as a grey image, black on white with a 4-module quiet zone."""
    matrix = np.array(make_qr(text).matrix, dtype=np.uint8)
    img = np.where(np.pad(matrix, 4) > 0, 0, 255).astype(np.uint8)
    return cv2.resize(img, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)


def _background(rng: random.Random) -> Frame:
    base = rng.randint(60, 200)
    grad = np.linspace(base - 40, base + 40, W, dtype=np.float32)[None, :].repeat(H, axis=0)
    noise = cv2.GaussianBlur(
        np.random.default_rng(rng.randint(0, 2**31)).normal(0, 25, (H, W)).astype(np.float32), (0, 0), 9
    )
    bg = np.clip(grad + noise, 0, 255).astype(np.uint8)
    return np.asarray(cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR))


def _place(frame: Frame, code: Frame, rng: random.Random, tilt: float, size: float) -> Frame:
    h, w = code.shape[:2]
    side = size * H
    cx, cy = rng.uniform(0.35, 0.65) * W, rng.uniform(0.35, 0.65) * H
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float32) * side / 2
    angle = np.deg2rad(rng.uniform(-25, 25))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32)
    dst = corners @ rot.T
    dst += np.array([[rng.uniform(-tilt, tilt) * side for _ in range(2)] for _ in range(4)], dtype=np.float32)
    dst += np.array([cx, cy], dtype=np.float32)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(cv2.cvtColor(code, cv2.COLOR_GRAY2BGR), m, (W, H), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (W, H))
    out = frame.copy()
    out[mask > 0] = warped[mask > 0]
    return out


def _phone(code: Frame, rng: random.Random) -> Frame:
    """The code on a phone screen: a dark body, a slightly blue backlit screen, scan lines."""
    h, w = code.shape[:2]
    pad = w // 6
    body = np.full((h + 4 * pad, w + 2 * pad), 25, np.uint8)
    # clipped, not wrapped: 255 * 0.95 + 30 once wrapped round to a black screen (10 of 200 hard frames)
    screen = np.clip(code.astype(np.float32) * rng.uniform(0.75, 0.95) + rng.uniform(10, 30), 0, 255).astype(np.uint8)
    screen[::3, :] = (screen[::3, :].astype(np.float32) * 0.93).astype(np.uint8)  # pixel-grid moiré
    body[2 * pad : 2 * pad + h, pad : pad + w] = screen
    return body


def degrade(frame: Frame, kinds: tuple[str, ...], rng: random.Random) -> Frame:
    out = frame
    if "blur" in kinds:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(1.2, 2.2))
    if "motion" in kinds:
        k = rng.randint(5, 9)
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        m = cv2.getRotationMatrix2D((k / 2, k / 2), rng.uniform(0, 180), 1)
        out = cv2.filter2D(out, -1, cv2.warpAffine(kernel, m, (k, k)))
    if "glare" in kinds:
        overlay = np.zeros_like(out, dtype=np.float32)
        centre = (rng.randint(300, W - 300), rng.randint(200, H - 200))
        axes = (rng.randint(60, 160), rng.randint(30, 90))
        cv2.ellipse(overlay, centre, axes, rng.uniform(0, 180), 0, 360, (255, 255, 255), -1)
        overlay = cv2.GaussianBlur(overlay, (0, 0), 25) * rng.uniform(0.5, 0.85)
        out = np.clip(out.astype(np.float32) + overlay, 0, 255).astype(np.uint8)
    if "dim" in kinds:
        out = (out.astype(np.float32) * rng.uniform(0.35, 0.55)).astype(np.uint8)
    if "noise" in kinds:
        noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(10, 22), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if "jpeg" in kinds:
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(12, 30)])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        out = out if decoded is None else decoded
    return out


def frame(text: str, seed: int, hard: bool = True) -> Frame:
    """One 720p frame of ``text``; ``hard`` combines two to four degradations, the rest one at most."""
    rng = random.Random(seed)
    count = rng.randint(2, 4) if hard else rng.randint(0, 1)
    kinds = tuple(rng.sample(DEGRADATIONS, count))
    code = code_image(text, module_px=rng.randint(4, 7) if hard else 7)
    if "phone" in kinds:
        code = _phone(code, rng)
    tilt = 0.22 if "perspective" in kinds else 0.04
    size = rng.uniform(0.35, 0.6) if hard else 0.6
    return degrade(_place(_background(rng), code, rng, tilt, size), kinds, rng)


def empty_frame(seed: int) -> Frame:
    return _background(random.Random(seed))


def write_video(path: Path, frames: Iterator[Frame] | list[Frame], fps: float = 15.0) -> int:
    """Write an MJPEG AVI (OpenCV's always-available codec); returns the frame count."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (W, H))
    n = 0
    try:
        for f in frames:
            writer.write(f)
            n += 1
    finally:
        writer.release()
    return n
