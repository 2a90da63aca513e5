"""Whether the kiosk window can open here, asked before OpenCV or Qt touches the display.

OpenCV's Qt backend cannot recover from a missing X server: it aborts the whole process (SIGABRT, exit
134) with advice to reinstall the application. The kiosk asks first (is DISPLAY set, does its X server
answer, is there a CJK font to draw the screen with) and says what to do instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Mapping
from typing import Any

from suishenma.texts import Text

from .ui import FontMissing, font_file

NO_DISPLAY = Text(
    "没有图形显示（未设置 DISPLAY）：请设置 DISPLAY（例如 DISPLAY=:0）后再启动，或用 --headless 无窗口运行",
    "no graphical display (DISPLAY is not set): set DISPLAY (e.g. DISPLAY=:0) and start again, "
    "or run without a window with --headless",
)
NO_X_SERVER = Text(
    "无法连接图形显示 {display}：请确认 X 服务器已启动、DISPLAY 正确，或用 --headless 无窗口运行",
    "cannot connect to display {display}: check that the X server is running and DISPLAY is right, "
    "or run without a window with --headless",
)
NO_FONT = Text(
    "没有中文字体，无法绘制屏幕：请安装 fonts-noto-cjk（scripts/system-deps 会安装），或用 --headless 无窗口运行",
    "no CJK font to draw the screen with: install fonts-noto-cjk (scripts/system-deps does), "
    "or run without a window with --headless",
)


@functools.cache
def xlib() -> Any:
    """libX11 through ctypes with the few signatures the kiosk calls, or None when it is not installed."""
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for fn in (lib.XDefaultScreen, lib.XCloseDisplay):
        fn.argtypes = [ctypes.c_void_p]
    for fn in (lib.XDisplayWidth, lib.XDisplayHeight):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _x_server_answers(name: str) -> bool:
    """True when the X server ``name`` accepts a connection (or when libX11 is missing and none can tell)."""
    lib = xlib()
    if lib is None:
        return True  # Qt brings its own xcb libraries: let it try
    handle = lib.XOpenDisplay(name.encode())
    if not handle:
        return False
    lib.XCloseDisplay(handle)
    return True


def window_problem(env: Mapping[str, str] | None = None) -> Text | None:
    """Why the kiosk window cannot open here (what to do, in both languages), or None when it can.

    ``env`` defaults to this process's environment.
    """
    display = (os.environ if env is None else env).get("DISPLAY", "").strip()
    if not display:
        return NO_DISPLAY
    if not _x_server_answers(display):
        return NO_X_SERVER.format(display=display)
    try:
        font_file()
    except FontMissing:
        return NO_FONT
    return None
