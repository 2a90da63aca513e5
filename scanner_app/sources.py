"""Frame sources behind one method, ``read()``: a frame, None when none is ready, EndOfStream when done.

A camera (or RTSP stream) that fails is released and reopened with backoff, forever: a kiosk's camera
may be unplugged and plugged back in. A frame that cannot be used is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ._types import Frame
from .errors import SourceMissing

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class EndOfStream(Exception):
    """A finite source (file, folder) has no more frames."""


class FrameSource(Protocol):
    def read(self) -> Frame | str | None:
        """A frame; or, from a keyboard-wedge reader (hid.py), a code's text; None when nothing is ready."""
        ...


def usable(frame: object) -> bool:
    """A real image: 2 or 3 dimensions, uint8, not empty."""
    return (
        isinstance(frame, np.ndarray)
        and frame.dtype == np.uint8
        and frame.ndim in (2, 3)
        and frame.shape[0] >= 16
        and frame.shape[1] >= 16
    )


class CaptureSource:
    """A webcam index or an RTSP/HTTP URL through ``cv2.VideoCapture``, reconnecting with backoff."""

    def __init__(
        self,
        target: int | str,
        *,
        opener: Callable[[int | str], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_backoff: float = 5.0,
    ) -> None:
        self.target = target
        self._open = opener or _open_capture
        self._clock = clock
        self._cap: Any = None
        self._retry_at = 0.0
        self._max_backoff = max_backoff
        self._first_backoff = min(0.5, max_backoff)
        self._backoff = self._first_backoff
        self.reconnects = 0
        self.connected = False

    def read(self) -> Frame | None:
        if self._cap is None:
            if self._clock() < self._retry_at:
                return None
            cap = self._open(self.target)
            if not getattr(cap, "isOpened", lambda: False)():
                self._fail("cannot open")
                return None
            self._cap, self.connected = cap, True
            if self.reconnects:
                log.info("camera %s reconnected", self.device)
        ok, frame = self._cap.read()
        if not ok:
            self._fail("stopped delivering frames")
            return None
        self._backoff = self._first_backoff
        return frame if usable(frame) else None

    def _fail(self, why: str) -> None:
        if self._cap is not None:
            release = getattr(self._cap, "release", None)
            if release:
                release()
            self._cap = None
        if self.connected:
            log.warning("camera %s %s; reconnecting", self.device, why)
        elif self.reconnects == 0:  # never opened at start-up: say so once, naming the device, in both languages
            # (only a camera that never opened gets here: one that opened is "connected" until it fails)
            log.error(
                "摄像头 %s 无法打开：请检查是否已插好；每隔几秒重试 | camera %s cannot open: check that it is "
                "plugged in; retrying every few seconds",
                self.device,
                self.device,
            )
        self.connected = False
        self.reconnects += 1
        self._retry_at = self._clock() + self._backoff
        self._backoff = min(self._max_backoff, self._backoff * 2)

    @property
    def device(self) -> str:
        """The camera as an operator knows it: ``/dev/video0`` for index 0, else the URL or path."""
        return f"/dev/video{self.target}" if isinstance(self.target, int) else str(self.target)

    def close(self) -> None:
        if self._cap is not None:
            getattr(self._cap, "release", lambda: None)()
            self._cap = None


def _open_capture(target: int | str) -> Any:
    # two calls so the type checker can pick cv2's int overload or its str overload
    return cv2.VideoCapture(target) if isinstance(target, int) else cv2.VideoCapture(target)  # noqa: RUF034


class VideoFileSource:
    """A video file, once through (``loop`` to repeat); an unreadable file raises at once."""

    def __init__(self, path: Path, loop: bool = False) -> None:
        """Raises: SourceMissing (a FileNotFoundError): no such file, or not a video OpenCV can read."""
        self.path = path
        self.loop = loop
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise SourceMissing(f"无法打开视频 {path}（文件不存在或格式无法读取）", f"cannot open video {path}")
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 15.0

    def read(self) -> Frame | None:
        ok, frame = self._cap.read()
        if not ok:
            if not self.loop:
                raise EndOfStream
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return None
        return frame if usable(frame) else None

    def close(self) -> None:
        self._cap.release()


class ImageFolderSource:
    """Every image in a folder, in name order; files that are not images are skipped."""

    def __init__(self, folder: Path, repeat: int = 1) -> None:
        """Raises: SourceMissing (a FileNotFoundError): ``folder`` is not a folder."""
        if not folder.is_dir():
            raise SourceMissing(f"图片文件夹 {folder} 不存在", f"no image folder {folder}")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.repeat = max(1, repeat)  # each image shown for several frames, like a held phone
        self._i = 0

    def read(self) -> Frame | None:
        if self._i >= len(self.files) * self.repeat:
            raise EndOfStream
        path = self.files[self._i // self.repeat]
        self._i += 1
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if not usable(frame):
            log.warning("skipping unreadable image %s", path.name)
            return None
        return frame

    def close(self) -> None:
        pass
