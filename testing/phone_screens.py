"""Phone screens held in front of a kiosk webcam: generated 720p frames with ground truth.

A kiosk's real input is a phone showing its code to a webcam at arm's length. Every frame here is built
the way such a picture comes about: the wallet page (status header, a white card, the code, a few lines
of text) is drawn on a backlit screen with its pixel grid, set in a dark phone body, held tilted somewhere
in the camera's view of a room, blurred by focus, recorded by a sensor (exposure, noise) and compressed as
MJPEG. Each *category* then adds the one difficulty it is named after:

- ``backlight``: a screen far brighter than the room, so the camera clips the light modules and blooms;
- ``glare``: a ceiling lamp's reflection over part of the code;
- ``moire``: the screen's pixel grid beating against the camera's, bands across the code;
- ``cracked``: a cracked and smudged screen;
- ``small``: the code only 10–25 % of the frame's width;
- ``tilt``: the phone turned well away from the camera (perspective, rotation);
- ``motion``: the hand still moving (motion blur);
- ``lowlight``: a dim room, the sensor's gain turned up (noise);
- ``coloured``: the wallet's coloured code (green, yellow or red modules);
- ``curved``: a screen curved at its edges.

``sample(text, category, seed)`` is deterministic. Ground truth is the text and the code's four corners in
the frame (clockwise from the top left, before the curve of a ``curved`` screen).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from scanner_app._types import Frame
from suishenma.qr import make_qr

W, H = 1280, 720
CATEGORIES = (
    "backlight",
    "glare",
    "moire",
    "cracked",
    "small",
    "tilt",
    "motion",
    "lowlight",
    "coloured",
    "curved",
)
# Status colours of the wallet's header and coloured code (BGR, 0..1): green, yellow, red.
STATUS_COLOURS = ((0.35, 0.62, 0.05), (0.0, 0.72, 0.96), (0.2, 0.2, 0.84))
# A screen's pixel grid (R, G, B stripes and a dark row gap) is drawn at 3 x 2 samples per screen pixel.
# A lens that spreads a point over 0.6 frame pixels or more wipes the grid's pattern out before the sensor
# samples it, so only the ``moire`` category, focused tighter, draws it; the others draw one sample per pixel.
GRID_SAMPLES = (3, 2)
# the camera's transfer curve (gamma 2.2) from 12-bit linear light to 8-bit pixels
_GAMMA = (np.power(np.linspace(0, 1, 4096), 1 / 2.2) * 255 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class Sample:
    """One generated frame and what it shows."""

    frame: Frame  # 720p BGR, uint8
    text: str
    category: str
    seed: int
    corners: Frame  # 4 x 2 float32, the code's corners in frame pixels


def sample(text: str, category: str, seed: int) -> Sample:
    """One 1280 x 720 frame of a phone showing ``text`` with the difficulty of ``category``.

    Raises:
        ValueError: an unknown category.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; one of {', '.join(CATEGORIES)}")
    rng = random.Random(f"{category}/{seed}")
    nrng = np.random.default_rng(rng.randrange(1 << 32))
    colour = rng.randrange(3)
    screen, code_box = _wallet_page(text, rng, colour, coloured=category == "coloured")
    grid = rng.uniform(0.4, 0.55) if category == "moire" else rng.uniform(0.82, 0.95)  # lit share of a pixel
    if category == "cracked":
        _crack(screen, rng, nrng)
    sub = GRID_SAMPLES if category == "moire" else (1, 1)
    phone, code_box = _phone(_pixel_grid(screen, grid) if category == "moire" else screen, code_box, sub, rng)
    if category == "curved":
        phone, code_box = _curve(phone, code_box, rng)

    # where the code lands: its width as a share of the frame's, then tilt and rotation
    share = rng.uniform(0.10, 0.25) if category == "small" else rng.uniform(0.2, 0.34)
    tilt = rng.uniform(0.18, 0.32) if category == "tilt" else rng.uniform(0.0, 0.08)
    turn = rng.uniform(-40, 40) if category == "tilt" else rng.uniform(-12, 12)
    homography, corners = _placement(phone.shape, code_box, sub, share, tilt, turn, rng)
    # the lens blurs before the sensor samples: a point spread of ``focus`` frame pixels, measured on the
    # phone image (a tight focus lets the pixel grid alias: moire)
    focus = rng.uniform(0.2, 0.35) if category == "moire" else rng.uniform(0.6, 1.1)
    across = share * W / float(code_box[2] - code_box[0])  # frame pixels per phone-image sample, across
    down = across * sub[0] / sub[1]
    phone = cv2.GaussianBlur(phone, (0, 0), sigmaX=focus / across, sigmaY=focus / down)

    room = _room(rng, nrng, dark=category == "lowlight")
    light = cv2.warpPerspective(phone, homography, (W, H), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones(phone.shape[:2], np.float32), homography, (W, H), flags=cv2.INTER_LINEAR)
    # the screen emits its own light: brighter than the room, the more so in a dark room or backlit
    emission = {"backlight": rng.uniform(1.6, 2.6), "lowlight": rng.uniform(0.9, 1.2)}.get(category, 1.0)
    emission *= rng.uniform(0.85, 1.05)
    scene = room * (1 - mask[..., None]) + light * emission * mask[..., None]

    if category == "glare":
        scene += _glare(corners, rng)[..., None] * np.array([1.0, 0.98, 0.95], np.float32)
    scene = _optics(scene, rng, category)
    frame = _sensor(scene, rng, nrng, category)
    return Sample(frame, text, category, seed, corners)


def samples(
    text: str, per_category: int, categories: tuple[str, ...] = CATEGORIES, first_seed: int = 0
) -> Iterator[Sample]:
    """``per_category`` frames of each category, in category order."""
    for category in categories:
        for seed in range(first_seed, first_seed + per_category):
            yield sample(text, category, seed)


# --- the wallet page --------------------------------------------------------------------------------------


def _wallet_page(text: str, rng: random.Random, colour: int, coloured: bool) -> tuple[Frame, Frame]:
    """The page in screen pixels (float BGR, 0..1) and the code's box (x0, y0, x1, y1) on it."""
    matrix = _matrix(text)
    n = matrix.shape[0]
    module = rng.choice((5, 6, 7))
    quiet = rng.choice((2, 3, 4))
    code_px = n * module
    card = code_px + 2 * quiet * module
    width = card + rng.randrange(60, 120)
    height = int(width * rng.uniform(1.55, 1.9))
    page = np.full((height, width, 3), rng.uniform(0.90, 0.96), np.float32)
    header = int(height * 0.14)
    page[:header] = STATUS_COLOURS[colour]
    _text_lines(page, header // 3, header - 8, width, rng, (0.97, 0.97, 0.97))
    top = header + rng.randrange(20, 50)
    left = (width - card) // 2
    page[top : top + card, left : left + card] = 1.0
    modules = np.kron(matrix, np.ones((module, module), np.uint8)).astype(bool)
    ink = np.array(STATUS_COLOURS[colour] if coloured else (0.08, 0.08, 0.08), np.float32)
    x0, y0 = left + quiet * module, top + quiet * module
    page[y0 : y0 + code_px, x0 : x0 + code_px][modules] = ink
    _text_lines(page, top + card + 20, height - 20, width, rng, (0.35, 0.35, 0.35))
    return page, np.array([x0, y0, x0 + code_px, y0 + code_px], np.float32)


@functools.lru_cache(maxsize=8)
def _matrix(text: str) -> Frame:
    """The code's modules (1 dark, 0 light), as the wallet renders them: ECC M (suishenma.qr)."""
    return np.array(make_qr(text).matrix, dtype=np.uint8)


def _text_lines(page: Frame, y0: int, y1: int, width: int, rng: random.Random, shade: tuple[float, ...]) -> None:
    y = y0
    while y + 10 < y1:
        length = int(width * rng.uniform(0.3, 0.8))
        x = (width - length) // 2
        page[y : y + rng.randrange(5, 9), x : x + length] = shade
        y += rng.randrange(16, 26)


def _crack(page: Frame, rng: random.Random, nrng: np.random.Generator) -> None:
    """Cracks radiating from an impact point, and greasy smudges that lower the contrast under them."""
    h, w = page.shape[:2]
    centre = (rng.uniform(0.15, 0.85) * w, rng.uniform(0.25, 0.8) * h)
    for _ in range(rng.randrange(5, 10)):
        angle = rng.uniform(0, 2 * math.pi)
        x, y = centre
        points = [(int(x), int(y))]
        for _ in range(rng.randrange(4, 9)):
            angle += rng.uniform(-0.5, 0.5)
            step = rng.uniform(0.05, 0.18) * w
            x, y = x + step * math.cos(angle), y + step * math.sin(angle)
            points.append((int(x), int(y)))
        shade = rng.choice((0.15, 0.25, 0.85, 0.95))
        cv2.polylines(page, [np.array(points, np.int32)], False, (shade, shade, shade), rng.choice((1, 1, 2)))
    smudge = np.zeros((h, w), np.float32)
    for _ in range(rng.randrange(2, 5)):
        cv2.ellipse(
            smudge,
            (rng.randrange(w), rng.randrange(h)),
            (rng.randrange(w // 8, w // 3), rng.randrange(h // 12, h // 5)),
            rng.uniform(0, 180),
            0,
            360,
            rng.uniform(0.3, 0.6),
            -1,
        )
    smudge = cv2.GaussianBlur(smudge, (0, 0), w / 25) * (0.7 + 0.3 * nrng.random((h, w), np.float32))
    page[:] = page * (1 - smudge[..., None]) + 0.7 * smudge[..., None]


def _pixel_grid(page: Frame, lit: float) -> Frame:
    """The page as the screen shows it: each pixel an R, G and B stripe with dark gaps around them."""
    across, down = GRID_SAMPLES
    big = cv2.resize(page, None, fx=across, fy=down, interpolation=cv2.INTER_NEAREST)
    stripes = np.zeros((1, across, 3), np.float32)
    for i, channel in enumerate((2, 1, 0)):  # R, G, B from the left; the array is BGR
        stripes[0, i, channel] = across * lit
    rows = np.array([1.0, 2 * lit - 1.0 if lit > 0.5 else 0.0], np.float32)[:, None, None]
    mask = np.tile(stripes, (2, 1, 1)) * rows
    mask /= mask.mean()  # the grid darkens nothing on average: it only redistributes the light
    h, w = big.shape[:2]
    return big * np.tile(mask, (h // down, w // across, 1))


def _phone(screen: Frame, code_box: Frame, sub: tuple[int, int], rng: random.Random) -> tuple[Frame, Frame]:
    """The screen set in a phone body; the code box in the phone image's samples (``sub`` per screen pixel)."""
    h, w = screen.shape[:2]
    bezel_x, bezel_y = rng.randrange(18, 36) * sub[0], rng.randrange(50, 90) * sub[1]
    body = np.full((h + 2 * bezel_y, w + 2 * bezel_x, 3), rng.uniform(0.03, 0.1), np.float32)
    body[bezel_y : bezel_y + h, bezel_x : bezel_x + w] = screen
    box = code_box * np.array([*sub, *sub], np.float32) + np.array([bezel_x, bezel_y] * 2, np.float32)
    return body, box


def _curve(phone: Frame, code_box: Frame, rng: random.Random) -> tuple[Frame, Frame]:
    """A screen that curves away near its left and right edges (a cylinder seen from the front)."""
    h, w = phone.shape[:2]
    strength = rng.uniform(0.10, 0.20)
    xs = np.linspace(-1, 1, w, dtype=np.float32)
    # a point at u on the flat screen appears at sin(u * a) / sin(a): compressed towards the edges
    a = math.pi / 2 * strength * 4
    src = np.arcsin(np.clip(xs * math.sin(a), -1, 1)) / a
    map_x = np.tile(((src + 1) / 2 * (w - 1)).astype(np.float32), (h, 1))
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    shade = 1 - 0.35 * np.abs(xs) ** 3  # the edges turn away from the camera and dim
    curved = cv2.remap(phone, map_x, map_y, cv2.INTER_LINEAR) * shade[None, :, None]
    return curved, code_box


def _placement(
    shape: tuple[int, ...],
    code_box: Frame,
    sub: tuple[int, int],
    share: float,
    tilt: float,
    turn: float,
    rng: random.Random,
) -> tuple[Frame, Frame]:
    """A homography from the phone image to the frame, and the code's corners in the frame."""
    x0, y0, x1, y1 = code_box
    scale = share * W / (x1 - x0)
    h, w = shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32)
    # the phone image has ``sub`` samples per screen pixel: measure the placement in screen pixels
    unit = np.array(sub, np.float32)
    theta = math.radians(turn)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], np.float32)
    placed = (corners - centre) / unit * scale * sub[0] @ rot.T
    # tilt: move the corners along the view axis (one side nearer, one further) as a perspective would
    axis = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(axis), math.sin(axis)], np.float32)
    depth = placed @ direction / (np.abs(placed @ direction).max() + 1e-6)
    placed = placed * (1 + tilt * depth)[:, None]
    target = np.array([rng.uniform(0.32, 0.68) * W, rng.uniform(0.35, 0.65) * H], np.float32)
    homography = cv2.getPerspectiveTransform(corners, placed + target)
    code = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)[None]
    return homography, cv2.perspectiveTransform(code, homography)[0]


# --- the room, the light, the camera --------------------------------------------------------------------


def _room(rng: random.Random, nrng: np.random.Generator, dark: bool) -> Frame:
    """A kiosk's view: a soft gradient, large blurred shapes (a wall, a person), a warm or cold tint."""
    level = rng.uniform(0.04, 0.12) if dark else rng.uniform(0.25, 0.6)
    angle = rng.uniform(0, 2 * math.pi)
    small = (H // 8, W // 8)  # the room is smooth: drawn small, then enlarged
    xs = np.linspace(0, math.cos(angle), small[1], dtype=np.float32)[None, :]
    ys = np.linspace(0, math.sin(angle), small[0], dtype=np.float32)[:, None]
    blobs = cv2.GaussianBlur(nrng.normal(0, 1, small).astype(np.float32), (0, 0), 4) * 2
    base = np.clip(level + (xs + ys) * level * 0.6 + blobs * level * 0.35, 0, 1)
    tint = np.array([rng.uniform(0.85, 1.1), 1.0, rng.uniform(0.85, 1.1)], np.float32)
    return cv2.resize(base[..., None] * tint, (W, H), interpolation=cv2.INTER_LINEAR)


def _glare(corners: Frame, rng: random.Random) -> Frame:
    """A lamp's reflection: a soft bright ellipse over part of the code."""
    spot = np.zeros((H, W), np.float32)
    centre = corners.mean(axis=0) + (corners[1] - corners[0]) * rng.uniform(-0.35, 0.35)
    side = float(np.linalg.norm(corners[1] - corners[0]))
    axes = (int(side * rng.uniform(0.18, 0.35)), int(side * rng.uniform(0.08, 0.2)))
    cv2.ellipse(spot, (int(centre[0]), int(centre[1])), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    return cv2.GaussianBlur(spot, (0, 0), max(2.0, side * 0.04)) * rng.uniform(0.6, 1.1)


def _optics(scene: Frame, rng: random.Random, category: str) -> Frame:
    """The room's defocus (the phone was blurred as it was placed), the hand's motion, the bloom of a
    bright screen."""
    out = cv2.GaussianBlur(scene, (0, 0), 0.5)
    if category in ("motion", "lowlight"):  # a moving hand; in the dark, a long exposure blurs a steady one
        length = rng.randrange(6, 17) if category == "motion" else rng.randrange(3, 7)
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        m = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
        out = cv2.filter2D(out, -1, cv2.warpAffine(kernel, m, (length, length)))
    if category == "backlight":
        bright = np.clip(out - 1.0, 0, None)
        out = out + cv2.GaussianBlur(bright, (0, 0), rng.uniform(4, 9)) * 0.6
    return out


def _sensor(scene: Frame, rng: random.Random, nrng: np.random.Generator, category: str) -> Frame:
    """Exposure, shot and read noise (more gain in the dark), clipping, gamma, MJPEG compression."""
    gain = rng.uniform(1.6, 2.6) if category == "lowlight" else 1.0
    exposed = np.maximum(scene * gain, 0.0)
    # shot noise grows with the light (variance ~ signal), read noise is fixed; both scale with the gain
    read = 0.012 if category == "lowlight" else 0.006
    sigma = cv2.sqrt(exposed * (0.02**2 * gain) + (read * gain) ** 2)
    noise = np.empty_like(exposed)
    cv2.setRNGSeed(int(nrng.integers(1 << 31)))
    cv2.randn(noise.reshape(noise.shape[0], -1), np.zeros(1), np.ones(1))  # a view: fills ``noise``
    exposed = np.clip(cv2.add(exposed, cv2.multiply(noise, sigma)), 0.0, 1.0)
    image = _GAMMA[(exposed * (len(_GAMMA) - 1)).astype(np.uint16)]
    quality = rng.randrange(40, 70) if category == "lowlight" else rng.randrange(55, 85)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return np.asarray(image if decoded is None else decoded)
