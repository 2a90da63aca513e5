"""The OpenCV window: full screen when asked; ``q`` or Esc quits."""

from __future__ import annotations

import cv2

from ._types import Frame
from .ui import H, Screen, W, render

TITLE = "Suishenma 随申码"


class Window:
    def __init__(self, fullscreen: bool = False, size: tuple[int, int] = (W, H)) -> None:
        self.size = size
        cv2.namedWindow(TITLE, cv2.WINDOW_NORMAL)
        if fullscreen:
            cv2.setWindowProperty(TITLE, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        else:
            cv2.resizeWindow(TITLE, *size)

    def show(self, frame: Frame | None, screen: Screen) -> bool:
        cv2.imshow(TITLE, render(frame, screen, self.size))
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(TITLE)
