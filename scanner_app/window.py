"""The OpenCV window: full screen when asked; ``q`` or Esc quits.

Kiosks often run a bare X server with no window manager, where asking OpenCV for full screen leaves a
small window: the window is also moved to the corner and sized to the screen, read from Xlib.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import cv2

from ._types import Frame
from .ui import H, Screen, W, render

TITLE = "Suishenma 随申码"
log = logging.getLogger(__name__)


def screen_size() -> tuple[int, int] | None:
    """The X display's size in pixels, or None when there is no display or no libX11."""
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    xlib = ctypes.CDLL(name)
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for fn in (xlib.XDefaultScreen, xlib.XCloseDisplay):
        fn.argtypes = [ctypes.c_void_p]
    for fn in (xlib.XDisplayWidth, xlib.XDisplayHeight):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
    display = xlib.XOpenDisplay(None)
    if not display:
        return None
    try:
        screen = xlib.XDefaultScreen(display)
        return int(xlib.XDisplayWidth(display, screen)), int(xlib.XDisplayHeight(display, screen))
    finally:
        xlib.XCloseDisplay(display)


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

    def show(self, frame: Frame | None, screen: Screen) -> bool:
        cv2.imshow(TITLE, render(frame, screen, self.size))
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(TITLE)
