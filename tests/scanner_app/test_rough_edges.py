"""What a kiosk operator and the people at the gate run into: no display, a verdict that vanishes while the
code is still held up, a foreign QR code shown as STOP, a black screen at start, errors in English only."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from scanner_app import Scanner
from scanner_app.decode import Decoded
from scanner_app.sources import EndOfStream
from scanner_app.ui import BANNER_H, COLOURS, Screen, render

from .test_loop import FakeVerifier, Verdict
from .test_ui import _xwd_to_bgr

ROOT = Path(__file__).resolve().parents[2]
CODE = "SM1:" + "A" * 60
FOREIGN = "https://shop.example/pay?id=42"


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(("错误：", "error: "))]


def _bilingual(err: str, *words: str) -> None:
    """One 错误 line, then its English ``error:`` line; each names every one of ``words``."""
    lines = _lines(err)
    assert len(lines) == 2, err
    assert lines[0].startswith("错误：") and lines[1].startswith("error: "), err
    assert any("\u4e00" <= ch <= "\u9fff" for ch in lines[0][3:]), err  # real Chinese, not English again
    for word in words:
        assert word in lines[0] and word in lines[1], (word, err)


# 1. No display --------------------------------------------------------------------------------------------


def _env_without_display() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def test_without_display_the_real_command_says_what_to_do_and_exits_2(state: Path, tmp_path: Path) -> None:
    """Qt would abort (exit 134, "Reinstalling the application may fix this problem")."""
    (tmp_path / "frames").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "scanner_app", "--state", str(state), "--images", str(tmp_path / "frames"), "--no-sync"],
        env=_env_without_display(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Reinstalling" not in done.stderr and "qt.qpa" not in done.stderr
    _bilingual(done.stderr, "DISPLAY", "--headless")


def test_a_display_with_no_x_server_behind_it_is_named() -> None:
    from scanner_app.display import window_problem

    number = next(n for n in range(917, 1000) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    problem = window_problem({"DISPLAY": f":{number}"})
    assert problem is not None and f":{number}" in problem.zh and f":{number}" in problem.en
    assert "--headless" in problem.zh and "--headless" in problem.en
    assert window_problem({}) is not None and "DISPLAY" in window_problem({})[0]  # type: ignore[index]


def test_headless_needs_no_display(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner_app.cli import main

    (tmp_path / "frames").mkdir()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["--state", str(state), "--images", str(tmp_path / "frames"), "--no-sync", "--headless"]) == 0
    assert not _lines(capsys.readouterr().err)


# 2. The verdict stays while the code stays in view ------------------------------------------------------


class Marked:
    """Tiny frames that stand for what is in view (a fake decoder reads the mark); the clock moves 0.5 s a
    frame, set as each frame is read."""

    def __init__(self, marks: list[str | None], clock: dict[str, float]) -> None:
        self.marks, self.clock, self.i = marks, clock, 0

    def read(self) -> Any:
        if self.i >= len(self.marks):
            raise EndOfStream
        self.clock["t"] = 0.5 * self.i
        self.i += 1
        return np.full((16, 16, 3), self.i, np.uint8)


class MarkDecoder:
    def __init__(self, source: Marked) -> None:
        self.source = source

    def decode(self, frame: Any) -> Decoded:
        text = self.source.marks[int(frame[0, 0, 0]) - 1]
        return Decoded(text, "fake" if text else "", 0.1, text is not None)


class Recorder:
    def __init__(self, clock: dict[str, float]) -> None:
        self.clock, self.shown = clock, []  # type: ignore[var-annotated]

    def show(self, frame: Any, screen: Screen) -> bool:
        self.shown.append((self.clock["t"], screen))
        return True


def test_verdict_stays_up_while_the_same_code_is_held_in_view() -> None:
    """Ten seconds in view (a 3 s hold): one verification, PASS all along; back to SHOW CODE only once the
    code has been gone for the hold."""
    marks: list[str | None] = [CODE] * 20 + [None] * 12  # in view 0..9.5 s, gone from 10 s
    clock = {"t": 0.0}
    source = Marked(marks, clock)
    display = Recorder(clock)
    verifier = FakeVerifier()
    calls: list[str] = []
    verify = verifier.verify
    verifier.verify = lambda text, now=None: calls.append(text) or verify(text, now)  # type: ignore[method-assign]
    Scanner(
        source, verifier, decoder=MarkDecoder(source), display=display, clock=lambda: clock["t"], verdict_hold_s=3.0
    ).run()  # type: ignore[arg-type]
    assert calls == [CODE]
    in_view = [s for t, s in display.shown if t < 10.0]
    assert [s.headline for s in in_view] == ["通过  PASS"] * 20
    gone = [(t, s.headline) for t, s in display.shown if t >= 10.0]
    assert all(h == "通过  PASS" for t, h in gone if t - 9.5 <= 3.0), gone  # last seen at 9.5 s
    assert gone[-1][1] == "请出示随申码  SHOW CODE" and gone[-1][0] - 9.5 > 3.0


def test_a_new_code_still_replaces_the_held_verdict_at_once() -> None:
    other = "SM1:" + "B" * 60
    clock = {"t": 0.0}
    source = Marked([CODE] * 4 + [other] * 2, clock)
    display = Recorder(clock)
    Scanner(source, FakeVerifier(), decoder=MarkDecoder(source), display=display, clock=lambda: clock["t"]).run()  # type: ignore[arg-type]
    assert [s.decision for _, s in display.shown] == ["ALLOW"] * 4 + ["DENY"] * 2


# 3. A QR code that is not ours has its own look and sound ---------------------------------------------------


@pytest.mark.parametrize("decision", ["DENY", "REFER"])  # a hospital refers what it cannot read
def test_not_a_code_is_neither_stop_nor_the_waiting_screen(decision: str) -> None:
    screen = Screen(decision, "not_a_code", "不是随申码", "Not a Suishenma code")
    waiting = Screen()
    assert screen.headline == "无法识别  NOT A CODE" and "STOP" not in screen.headline
    assert screen.headline != waiting.headline
    img = render(None, screen)
    b, g, r = img[-5, 5]
    assert (int(r), int(g), int(b)) == COLOURS["NOT_A_CODE"]
    assert COLOURS["NOT_A_CODE"] not in (COLOURS["GREY"], COLOURS["DENY"], COLOURS["REFER"], COLOURS["ALLOW"])


def _linear(rgb: tuple[int, int, int]) -> np.ndarray:
    c = np.array(rgb, float) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab(linear: np.ndarray) -> np.ndarray:
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ np.clip(
        linear, 0, 1
    )
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


# Machado, Oliveira and Fernandes (2009), full severity, on linear RGB
VISION = {
    "typical": np.eye(3),
    "protanopia": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
    ),
    "deuteranopia": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
    ),
    "tritanopia": np.array(
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]
    ),
}


@pytest.mark.parametrize("vision", VISION)
def test_not_a_code_colour_stays_apart_for_colour_blind_viewers(vision: str) -> None:
    """CIE76 distance of at least 20 from every other banner under each simulated vision (the headline
    differs as well), and white text on it well above 4.5:1."""
    m = VISION[vision]
    mine = _lab(m @ _linear(COLOURS["NOT_A_CODE"]))
    for key in ("ALLOW", "DENY", "REFER", "GREY"):
        assert np.linalg.norm(mine - _lab(m @ _linear(COLOURS[key]))) >= 20, (vision, key)
    luminance = float(np.array([0.2126, 0.7152, 0.0722]) @ _linear(COLOURS["NOT_A_CODE"]))
    assert 1.05 / (luminance + 0.05) >= 4.5


def test_not_a_code_plays_its_own_sound_and_is_still_recorded() -> None:
    from scanner_app.cues import TONES

    class Foreign(FakeVerifier):
        def verify(self, text: str, now: float | None = None) -> Any:
            v = Verdict("DENY")
            v.reason, v.message_zh, v.message_en = "not_a_code", "不是随申码", "Not a Suishenma code"
            return v

    played: list[str] = []

    class Sound:
        def play(self, key: str) -> None:
            played.append(key)

    clock = {"t": 0.0}
    source = Marked([FOREIGN] * 2, clock)
    display, out = Recorder(clock), io.StringIO()
    Scanner(source, Foreign(), decoder=MarkDecoder(source), display=display, sound=Sound(), out=out).run()  # type: ignore[arg-type]
    assert played == ["NOT_A_CODE"] and TONES["NOT_A_CODE"] not in (TONES["DENY"], TONES["ALLOW"], TONES["REFER"])
    assert json.loads(out.getvalue())["reason"] == "not_a_code"  # the record keeps the verifier's decision
    assert display.shown[-1][1].colour_key == "NOT_A_CODE"


# 4. Not a black screen at start ----------------------------------------------------------------------------

# The real command, with a source that never delivers until the test says so: a camera or stream still opening.
_SLOW_KIOSK = """
import sys, time
from pathlib import Path
import scanner_app.cli as cli
from scanner_app.sources import EndOfStream

go, reading = Path(sys.argv[1]), Path(sys.argv[2])

class Opening:
    def read(self):
        reading.touch()
        deadline = time.monotonic() + 300  # bounds a hang only
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise EndOfStream

cli.make_source = lambda cfg: Opening()
sys.exit(cli.main(sys.argv[3:]))
"""


def _start_xvfb(display: str) -> subprocess.Popen[bytes]:
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-br"], stderr=subprocess.DEVNULL
    )
    socket_path = Path(f"/tmp/.X11-unix/X{display[1:]}")
    deadline = time.monotonic() + 30  # bounds a hang only: the test waits for the server's socket
    while not socket_path.exists() and time.monotonic() < deadline and xvfb.poll() is None:
        time.sleep(0.05)
    assert socket_path.exists(), "Xvfb did not start"
    return xvfb


@pytest.mark.skipif(not shutil.which("Xvfb") or not shutil.which("xwd"), reason="xvfb and x11-apps not installed")
def test_window_shows_a_grey_starting_screen_before_the_camera_delivers(state: Path, tmp_path: Path) -> None:
    """While the source has not delivered a single frame, the window already shows the grey banner with its
    text: never a black screen (-br: the bare X server's own background is black)."""
    display = f":{700 + os.getpid() % 200}"
    xvfb = _start_xvfb(display)
    go, reading = tmp_path / "go", tmp_path / "reading"
    app = subprocess.Popen(
        [sys.executable, "-c", _SLOW_KIOSK, str(go), str(reading), "--state", str(state), "--camera", "0", "--no-sync"],
        env={**os.environ, "DISPLAY": display},
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # bounds a hang only: the app waits for its first frame from here on
        while not reading.exists() and app.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reading.exists(), "the kiosk never asked its source for a frame"
        grey = np.array(COLOURS["GREY"][::-1], np.uint8)
        shot, tries = None, 0
        while shot is None and tries < 50 and app.poll() is None:  # a few polls while the window maps
            tries += 1
            dump = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True).stdout
            img = _xwd_to_bgr(dump) if len(dump) > 100 else None
            if img is not None and np.count_nonzero(np.all(img == grey, axis=2)) > 100_000:
                shot = img
            else:
                time.sleep(0.2)
        assert not go.exists()  # still no frame delivered
        go.touch()
        assert app.wait(60) == 0
        err = app.stderr.read() if app.stderr else ""
        assert shot is not None, f"no starting screen while the camera opened; app log:\n{err[-2000:]}"
        cv2.imwrite(str(tmp_path / "starting.png"), shot)
        ys, xs = np.nonzero(np.all(shot == grey, axis=2))
        banner = shot[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        # the whole banner, however the window scales the drawing to fit beside its toolbar
        height, width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert width > 800 and abs(height / width - BANNER_H / 1280) < 0.03, (width, height)
        assert np.count_nonzero(np.all(banner > 240, axis=2)) > 2000  # with its white text drawn
    finally:
        go.touch()
        if app.poll() is None:
            app.terminate()
            app.wait(20)
        xvfb.terminate()
        xvfb.wait(10)


# 5. Errors in Chinese, then English ------------------------------------------------------------------------


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from scanner_app.cli import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_every_start_up_error_is_chinese_first(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_toml, unknown, wrong_type = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "c.toml"
    bad_toml.write_text("sound = \n")
    unknown.write_text("colour = 'red'\n")
    wrong_type.write_text("sound = 'yes'\n")
    headless = ("--headless", "--no-sync")
    cases = [
        ((*headless, "--state", str(state), "--camera", "zero"), "--camera"),
        ((*headless, "--state", str(state), "--config", str(tmp_path / "none.toml")), "none.toml"),
        ((*headless, "--state", str(state), "--config", str(bad_toml)), "a.toml"),
        ((*headless, "--state", str(state), "--config", str(unknown)), "colour"),
        ((*headless, "--state", str(state), "--config", str(wrong_type)), "sound"),
        ((*headless, "--camera", "0"), "--state"),
        ((*headless, "--state", str(tmp_path / "empty"), "--camera", "0"), "suishenma-verifier init"),
        ((*headless, "--state", str(state), "--video", str(tmp_path / "none.avi")), "none.avi"),
        ((*headless, "--state", str(state), "--images", str(tmp_path / "nothing")), "nothing"),
    ]
    for args, word in cases:
        code, err = _main(capsys, *args)
        assert code == 2, (args, err)
        _bilingual(err, word)


def test_hid_reader_without_evdev_is_a_bilingual_error_retried_like_an_unplugged_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scanner_app.errors import ReaderUnavailable
    from scanner_app.hid import open_evdev

    monkeypatch.setitem(sys.modules, "evdev", None)  # import evdev raises ImportError
    with pytest.raises(ReaderUnavailable) as caught:
        open_evdev("/dev/input/event3")
    assert isinstance(caught.value, OSError)  # what HidSource retries with backoff
    assert "python-evdev" in caught.value.zh and "未安装" in caught.value.zh and "not installed" in caught.value.en


def test_camera_missing_at_start_is_logged_chinese_first(caplog: pytest.LogCaptureFixture) -> None:
    from scanner_app.sources import CaptureSource

    class Closed:
        def isOpened(self) -> bool:  # cv2's name
            return False

    with caplog.at_level(logging.ERROR, logger="scanner_app.sources"):
        assert CaptureSource(0, opener=lambda _: Closed()).read() is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.index("摄像头 /dev/video0") < message.index("camera /dev/video0")
