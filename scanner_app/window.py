"""The OpenCV window: full screen when asked; ``q`` or Esc quits.

Kiosks often run a bare X server with no window manager, where asking OpenCV for full screen leaves a
small window: the window is also moved to the corner and sized to the screen, read from Xlib.

The window says STARTING the moment it opens: opening a camera or an RTSP stream can take seconds, and a
black screen at a gate looks broken.
"""

from __future__ import annotations

import logging

import cv2

from ._types import Frame
from .display import xlib
from .ui import STARTING, H, Screen, W, render

TITLE = "Suishenma 随申码"
log = logging.getLogger(__name__)


def screen_size() -> tuple[int, int] | None:
    """The X display's size in pixels, or None when there is no display or no libX11."""
    lib = xlib()
    if lib is None:
        return None
    display = lib.XOpenDisplay(None)
    if not display:
        return None
    try:
        screen = lib.XDefaultScreen(display)
        return int(lib.XDisplayWidth(display, screen)), int(lib.XDisplayHeight(display, screen))
    finally:
        lib.XCloseDisplay(display)


class Window:
    def __init__(self, fullscreen: bool = False, size: tuple[int, int] = (W, H)) -> None:
        self.size = size
        cv2.namedWindow(TITLE, cv2.WINDOW_NORMAL)
        if fullscreen:
            whole = screen_size()
            if whole is not None:
                self.size = whole  # draw at the screen's own resolution
                cv2.moveWindow(TITLE, 0, 0)
                cv2.resizeWindow(TITLE, *whole)
            else:
                log.warning("screen size unknown (no X display?): asking the window system for full screen only")
            cv2.setWindowProperty(TITLE, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        else:
            cv2.resizeWindow(TITLE, *size)
        self.show(None, STARTING)

    def show(self, frame: Frame | None, screen: Screen) -> bool:
        cv2.imshow(TITLE, render(frame, screen, self.size))
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(TITLE)
