"""The verdict screen offscreen (colours, text placement, CJK glyphs) and a real window under Xvfb."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from scanner_app import Screen, render
from scanner_app.ui import BANNER_H, COLOURS, STATUS_H
from testing import synthetic_frames as synthetic

from ..verifier.sim import IssuerSim

W, H = 1280, 720


def _rgb_at(img: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    b, g, r = img[y, x]
    return int(r), int(g), int(b)


@pytest.mark.parametrize(
    ("decision", "reason", "key"),
    [
        ("ALLOW", "ok", "ALLOW"),
        ("DENY", "status_red", "DENY"),
        ("REFER", "status_yellow", "REFER"),
        ("DENY", "stale_lists", "GREY"),
        (None, "", "GREY"),
    ],
)
def test_banner_colour_follows_the_decision(decision: str | None, reason: str, key: str) -> None:
    img = render(synthetic.empty_frame(1), Screen(decision, reason, "通过", "Pass", "张*三"))
    assert img.shape == (H, W, 3)
    assert _rgb_at(img, 5, H - 5) == COLOURS[key]
    assert _rgb_at(img, W - 5, H - BANNER_H + 5) == COLOURS[key]


def test_text_sits_inside_the_banner_and_status_bar() -> None:
    screen = Screen("ALLOW", "ok", "通过，欢迎光临", "Pass, welcome", "张*三", sync_age_s=90, scans_today=12)
    img = render(None, screen)
    banner = img[H - BANNER_H :, :]
    text_pixels = np.any(banner != np.array(COLOURS["ALLOW"][::-1], np.uint8), axis=2)
    rows = np.flatnonzero(text_pixels.any(axis=1))
    assert rows.size and rows.min() > 5 and rows.max() < BANNER_H - 5  # text well inside the banner
    cols = np.flatnonzero(text_pixels[:120].any(axis=0))
    assert cols.min() >= 30 and cols.max() > W - 300  # headline at the left, masked name at the right
    status = img[:STATUS_H, :]
    assert np.count_nonzero(np.any(status > 200, axis=2)) > 500  # the status line is drawn
    assert np.count_nonzero(img[STATUS_H : H - BANNER_H]) == 0  # no preview: black


def test_chinese_is_drawn_with_real_glyphs() -> None:
    a = render(None, Screen("DENY", "status_red", "红码：不予通行", "Red code"))
    b = render(None, Screen("DENY", "status_red", "黄码：限制通行", "Red code"))
    zone = slice(H - BANNER_H + 130, H - BANNER_H + 210)
    assert np.count_nonzero(a[zone] != b[zone]) > 1000  # different characters draw differently: not tofu boxes


def test_stale_and_offline_are_shown_on_the_status_line() -> None:
    calm = render(None, Screen(sync_age_s=30))
    alarm = render(None, Screen(sync_age_s=30, offline=True, stale=True))
    yellow = np.array([0, 210, 255], np.uint8)  # BGR of the warning ink
    assert not np.any(np.all(calm[:STATUS_H] == yellow, axis=2))
    assert np.any(np.all(alarm[:STATUS_H] == yellow, axis=2))


def _xwd_to_bgr(data: bytes) -> np.ndarray:
    """A 24/32-bit TrueColor XWD dump (what ``xwd`` writes for Xvfb) as a BGR image."""
    header = struct.unpack(">25I", data[:100])
    header_size, width, height = header[0], header[4], header[5]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = header[7], header[11], header[12], header[19]
    size = bits_per_pixel // 8
    assert size in (3, 4), bits_per_pixel
    start = header_size + ncolors * 12
    pixels = np.frombuffer(data[start : start + bytes_per_line * height], np.uint8).reshape(height, bytes_per_line)
    pixels = pixels[:, : width * size].reshape(height, width, size)
    return pixels[:, :, :3] if byte_order == 0 else pixels[:, :, size - 1 : size - 4 : -1]


@pytest.mark.skipif(not shutil.which("Xvfb") or not shutil.which("xwd"), reason="xvfb and x11-apps not installed")
@pytest.mark.parametrize("fullscreen", [False, True], ids=["window", "fullscreen"])
def test_real_window_under_xvfb_shows_the_green_banner(
    sim: IssuerSim, state: Path, tmp_path: Path, fullscreen: bool
) -> None:
    """A bare X server (no window manager, as kiosks often run): --fullscreen must fill the screen."""
    display = f":{50 + os.getpid() % 200 + 300 * fullscreen}"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1600x900x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
    )
    try:
        socket_path = Path(f"/tmp/.X11-unix/X{display[1:]}")
        deadline = time.monotonic() + 30  # bounds a hang only: the test waits for the server's socket
        while not socket_path.exists() and time.monotonic() < deadline and xvfb.poll() is None:
            time.sleep(0.05)
        assert socket_path.exists(), "Xvfb did not start"
        frames = tmp_path / "frames"
        frames.mkdir()
        for i in range(3):
            cv2.imwrite(str(frames / f"{i}.png"), synthetic.frame(sim.code(), i, hard=False))
        env = {**os.environ, "DISPLAY": display}
        config = tmp_path / "kiosk.toml"
        # frames until the test stops it: the banner is awaited however slowly a loaded machine starts the app
        config.write_text("image_repeat = 1000000\nsound = false\n")
        app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scanner_app",
                "--state",
                str(state),
                "--images",
                str(frames),
                "--no-sync",
                "--config",
                str(config),
                *(["--fullscreen"] if fullscreen else []),
            ],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            stderr=subprocess.PIPE,
            text=True,
        )
        shot = None
        deadline = time.monotonic() + 180  # bounds a hang only
        while time.monotonic() < deadline and app.poll() is None:
            time.sleep(0.3)
            dump = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True).stdout
            if len(dump) > 100:
                img = _xwd_to_bgr(dump)
                green = np.all(img == np.array(COLOURS["ALLOW"][::-1], np.uint8), axis=2)
                if np.count_nonzero(green) > 100_000:
                    shot = img
                    break
        app.terminate()
        _, err = app.communicate(timeout=20)
        assert shot is not None, f"no green verdict banner on screen; app log:\n{err[-2000:]}"
        cv2.imwrite(str(tmp_path / "screen.png"), shot)
        ys, xs = np.nonzero(np.all(shot == np.array(COLOURS["ALLOW"][::-1], np.uint8), axis=2))
        assert xs.max() - xs.min() > 1000 and ys.max() - ys.min() > 200  # the wide banner, not a speck
        if fullscreen:  # edge to edge, down to the bottom of the 1600x900 screen
            assert xs.min() <= 2 and xs.max() >= 1597 and ys.max() >= 897, (xs.min(), xs.max(), ys.max())
    finally:
        xvfb.terminate()
        xvfb.wait(10)


@pytest.mark.parametrize("width", [1280, 1024, 800])
def test_top_line_never_runs_into_the_scenario_label(width: int) -> None:
    """OFFLINE and STALE together, a long custom scenario name, a narrow screen: nothing overlaps."""
    from PIL import Image, ImageDraw

    from scanner_app.ui import MARGIN, status_line

    draw = ImageDraw.Draw(Image.new("RGB", (width, STATUS_H)))
    for scenario in ("venue", "hospital", "city-hall-east-entrance"):
        screen = Screen(sync_age_s=7300, offline=True, stale=True, scans_today=12345, scenario=scenario)
        text, text_font, label, label_font = status_line(draw, screen, width)
        right_edge = MARGIN + draw.textlength(text, font=text_font)
        label_left = width - MARGIN - draw.textlength(label, font=label_font)
        assert right_edge + MARGIN <= label_left, (width, scenario, text)
        assert "离线" in text and "名单过期" in text  # the warnings survive any shortening


def test_scenario_label_is_chinese_first() -> None:
    from PIL import Image, ImageDraw

    from scanner_app.ui import status_line

    draw = ImageDraw.Draw(Image.new("RGB", (W, STATUS_H)))
    assert status_line(draw, Screen(scenario="hospital"), W)[2] == "医院 · Hospital"
    assert status_line(draw, Screen(scenario="clinic"), W)[2] == "clinic"  # a custom policy's own name


def test_hospital_referral_says_where_to_go_not_no_entry() -> None:
    from verifier import BUILTIN, VerdictReason

    zh, en = BUILTIN["hospital"].message(VerdictReason.STATUS_YELLOW)
    assert "发热门诊" in zh and "fever clinic" in en and "不予通行" not in zh
    assert BUILTIN["venue"].message(VerdictReason.OK) != ("通过", "Pass")  # the headline already says PASS


@pytest.mark.parametrize(
    ("reason", "headline"),
    [
        ("stale_lists", "名单过期  LISTS OUT OF DATE"),
        ("no_trust_list", "暂停服务  NOT READY"),
        ("no_status_list", "名单未同步  LIST NOT SYNCED"),
        ("clock_wrong", "时钟错误  CLOCK WRONG"),
        ("malformed", "无法读取  CODE UNREADABLE"),
        ("cannot_check", "无法核验  CANNOT CHECK"),
    ],
)
@pytest.mark.parametrize("decision", ["DENY", "REFER"])
def test_a_grey_verdict_says_why_and_never_stop(decision: str, reason: str, headline: str) -> None:
    """Grey means "not decided": telling the person STOP there would say they were refused."""
    screen = Screen(decision, reason, "无法核验", "Cannot check")
    assert screen.colour_key == "GREY" and screen.headline == headline
    assert _rgb_at(render(None, screen), 5, H - 5) == COLOURS["GREY"]
