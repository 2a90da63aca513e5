"""Frame sources (a camera that vanishes and comes back, garbage frames), decoding and dedup."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from scanner_app import CaptureSource, Decoder, Dedup, EndOfStream, ImageFolderSource, Scanner
from scanner_app.config import load_config
from scanner_app.sources import usable
from testing import synthetic_frames as synthetic

from ..conftest import shared_data
from .fakes import CountingVerifier

CODE = "SM1:" + "6BFOXN*TS0BI$ZD.P9UOL97O4-2HH77HRM3DSPTLRR+%3" * 4


class FakeCapture:
    """A camera that delivers ``frames`` frames, then dies as if unplugged."""

    def __init__(self, frames: int, image: np.ndarray) -> None:
        self.left = frames
        self.image = image
        self.released = False

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, self.image

    def release(self) -> None:
        self.released = True


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_camera_unplugged_mid_run_reconnects_with_backoff() -> None:
    image = synthetic.frame(CODE, 1, hard=False)
    plugged = [True]
    opened: list[FakeCapture] = []

    def opener(target: int | str) -> object:
        if not plugged[0]:
            return type("Closed", (), {"isOpened": lambda self: False})()
        cap = FakeCapture(3, image)
        opened.append(cap)
        return cap

    clock = FakeClock()
    src = CaptureSource(0, opener=opener, clock=clock)
    assert all(src.read() is not None for _ in range(3))
    plugged[0] = False
    assert src.read() is None and opened[0].released and not src.connected  # unplugged
    clock.t += 0.1
    assert src.read() is None  # still backing off: no reopen attempt yet
    clock.t += 1.0
    assert src.read() is None  # reopen failed: backoff doubles
    plugged[0] = True
    clock.t += 0.6
    assert src.read() is None  # inside the doubled backoff
    clock.t += 2.0
    assert src.read() is not None and src.connected and len(opened) == 2


def test_scanner_loop_survives_a_camera_that_disappears() -> None:
    image = synthetic.frame(CODE, 2, hard=False)
    calls = {"n": 0}

    def opener(target: int | str) -> object:
        calls["n"] += 1
        return FakeCapture(5, image)

    verifier = CountingVerifier()
    clock = FakeClock()
    src = CaptureSource(0, opener=opener, clock=clock, max_backoff=0.01)

    class Ticking:  # each read moves the injected clock past the reopen backoff
        def read(self) -> object:
            clock.t += 0.02
            return src.read()

    stats = Scanner(Ticking(), verifier).run(max_frames=20)
    assert stats.frames == 20 and calls["n"] == 4 and len(verifier.texts) == 1


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((720, 1280, 3), np.float32),
        np.zeros((4, 4), np.uint8),
        np.zeros((2, 2, 2, 2), np.uint8),
        "not an array",
        None,
    ],
)
def test_garbage_frames_are_not_usable(frame: object) -> None:
    assert not usable(frame)


def test_decoder_never_raises_on_garbage() -> None:
    d = Decoder(retry="always")
    rng = np.random.default_rng(5)
    for shape in ((16, 16), (720, 1280), (720, 1280, 3), (3000, 4000)):
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        assert d.decode(frame).text is None
    assert d.decode(np.zeros((720, 1280), np.uint8)).text is None


def test_decoder_reads_clean_and_degraded_frames() -> None:
    d = Decoder(retry="always")
    assert d.decode(synthetic.frame(CODE, 1, hard=False)).text == CODE
    read = sum(d.decode(synthetic.frame(CODE, s, hard=True)).text == CODE for s in range(20))
    assert read >= 12


def test_image_folder_skips_files_that_are_not_images(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), synthetic.frame(CODE, 1, hard=False))
    (tmp_path / "b.png").write_bytes(b"not a png at all")
    (tmp_path / "notes.txt").write_text("hello")
    src = ImageFolderSource(tmp_path)
    assert src.read() is not None and src.read() is None
    with pytest.raises(EndOfStream):
        src.read()


def test_same_code_in_consecutive_frames_is_verified_once() -> None:
    dedup = Dedup(forget_s=3.0)
    assert dedup.fresh("A", 0.0)
    assert not dedup.fresh("A", 0.1) and not dedup.fresh("A", 2.9) and not dedup.fresh("A", 5.0)  # held still
    assert dedup.fresh("B", 5.1)  # a new code at once
    assert dedup.fresh("A", 5.2)
    assert dedup.fresh("A", 9.0)  # shown again after it was taken away


def test_config_rejects_unknown_options_and_wrong_types(tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text('state = "/var/lib/suishenma"\nsync_interval_s = 60\nsound = false\n')
    loaded = load_config(cfg, headless=True)
    assert loaded.state == "/var/lib/suishenma" and loaded.sync_interval_s == 60 and loaded.headless
    for bad, detail in (
        ('colour = "red"', "unknown scanner options: colour"),
        ('sound = "yes"', "sound must be true or false"),
        ("sync_interval_s = 'soon'", "sync_interval_s must be a number"),
        ('retry = "sometimes"', "retry must be auto, always or never"),
        ("x = ", f"{cfg}: Invalid value"),
    ):
        cfg.write_text(bad)
        with pytest.raises(ValueError) as exc:
            load_config(cfg)
        assert str(exc.value).startswith(detail), bad


def test_example_config_in_docs_loads_and_documents_every_option() -> None:
    from dataclasses import fields

    from scanner_app.config import ScannerConfig

    example = Path(__file__).resolve().parents[2] / "docs" / "scanner.example.toml"
    text = example.read_text()
    load_config(example)
    for f in fields(ScannerConfig):
        assert f"{f.name} =" in text, f"docs/scanner.example.toml does not document {f.name}"


def test_zxing_blackbox_images_read_by_the_pipeline() -> None:
    root = shared_data("qr", "zxing-blackbox")
    d = Decoder(retry="always")
    items = [(p, p.with_suffix(".txt")) for p in sorted(root.glob("qrcode-*/*.png")) if p.with_suffix(".txt").exists()]
    read = 0
    for png, txt in items:
        expected = txt.read_bytes().decode("utf-8", "replace").strip()
        got = d.decode(cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)).text
        read += got is not None and got.strip() == expected
    assert len(items) == 179
    assert read / len(items) >= 0.96, f"{read}/{len(items)}"
