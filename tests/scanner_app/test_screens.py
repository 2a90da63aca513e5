"""The phone-screen frame generator: deterministic, true to its ground truth, and each category what it says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from scanner_app import Decoder
from testing import phone_screens as screens

CODE = "SM1:" + "6BFOXN*TS0BI$ZD.P9UOL97O4-2HH77HRM3DSPTLRR+%3" * 4


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    a, b = screens.sample(CODE, "glare", 7), screens.sample(CODE, "glare", 7)
    assert np.array_equal(a.frame, b.frame) and np.array_equal(a.corners, b.corners)
    assert not np.array_equal(a.frame, screens.sample(CODE, "glare", 8).frame)
    assert a.frame.shape == (720, 1280, 3) and a.frame.dtype == np.uint8


def test_unknown_category_refused() -> None:
    with pytest.raises(ValueError, match="unknown category"):
        screens.sample(CODE, "rain", 1)


@pytest.mark.parametrize("category", screens.CATEGORIES)
def test_ground_truth_corners_frame_the_code(category: str) -> None:
    """The corners lie in the frame and enclose a square-ish code, which the pipeline reads in most frames."""
    read = 0
    for seed in range(3):
        s = screens.sample(CODE, category, seed)
        assert s.text == CODE and s.category == category and s.corners.shape == (4, 2)
        assert (s.corners[:, 0] > -40).all() and (s.corners[:, 0] < 1320).all()
        sides = [float(np.linalg.norm(s.corners[i] - s.corners[(i + 1) % 4])) for i in range(4)]
        assert max(sides) / min(sides) < 2.0
        read += Decoder(retry="always").decode(s.frame).text == CODE
    assert read >= 1


def test_small_codes_take_a_tenth_to_a_quarter_of_the_frame_width() -> None:
    for seed in range(6):
        corners = screens.sample(CODE, "small", seed).corners
        width = float(np.linalg.norm(corners[1] - corners[0]))
        assert 0.08 * 1280 <= width <= 0.27 * 1280


def test_coloured_codes_are_coloured_and_others_are_grey() -> None:
    def saturation(category: str) -> float:
        s = screens.sample(CODE, category, 2)
        x0, y0 = s.corners.min(axis=0).astype(int)
        x1, y1 = s.corners.max(axis=0).astype(int)
        hsv = cv2.cvtColor(s.frame[y0:y1, x0:x1], cv2.COLOR_BGR2HSV)
        return float(np.percentile(hsv[..., 1], 90))

    assert saturation("coloured") > 60 > saturation("tilt")


def test_backlight_clips_the_screen_and_lowlight_shows_the_sensor_gain() -> None:
    back = screens.sample(CODE, "backlight", 4)
    x0, y0 = back.corners.min(axis=0).astype(int)
    x1, y1 = back.corners.max(axis=0).astype(int)
    assert (cv2.cvtColor(back.frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY) >= 250).mean() > 0.2

    def grain(category: str, seed: int) -> float:
        """The noise in the frame corner furthest from the code (the room), after a smoothing."""
        s = screens.sample(CODE, category, seed)
        centre = s.corners.mean(axis=0)
        x, y = max(((0, 0), (1200, 0), (0, 640), (1200, 640)), key=lambda p: np.hypot(*(np.add(p, 40) - centre)))
        patch = cv2.cvtColor(s.frame[y : y + 80, x : x + 80], cv2.COLOR_BGR2GRAY).astype(np.float32)
        return float((patch - cv2.GaussianBlur(patch, (0, 0), 3)).std())

    assert min(grain("lowlight", seed) for seed in range(4)) > 2 * max(grain("tilt", seed) for seed in range(4))
