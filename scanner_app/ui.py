"""The kiosk screen, drawn offscreen into a BGR image: live preview above, a verdict banner below.

Large, high-contrast text readable from two metres, in Chinese and English (a CJK font through
Pillow; OpenCV's own fonts have no Chinese). Green ALLOW, red DENY, amber REFER, grey for idle,
unreadable or stale lists, slate blue for a QR code that is not a Suishenma code at all (neither a
refusal nor waiting). Each look has its own headline too, so no one has to tell colours apart.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from suishenma.texts import Text

from ._types import Frame

W, H = 1280, 720
STATUS_H, BANNER_H = 56, 300
# RGB; amber carries black text, the others white (contrast ratio above 4.5 each). NOT_A_CODE's slate
# blue stays apart from the others under protan, deutan and tritan vision too (a test checks it).
COLOURS = {
    "ALLOW": (0, 135, 60),
    "DENY": (200, 30, 30),
    "REFER": (255, 176, 0),
    "GREY": (85, 85, 85),
    "NOT_A_CODE": (60, 60, 150),
}
TEXT_ON = {
    "ALLOW": (255, 255, 255),
    "DENY": (255, 255, 255),
    "REFER": (0, 0, 0),
    "GREY": (255, 255, 255),
    "NOT_A_CODE": (255, 255, 255),
}
HEADLINE = {"ALLOW": "通过  PASS", "DENY": "禁止通行  STOP", "REFER": "请找工作人员  SEE STAFF"}
# Verdicts whose reason, not decision, sets the look: a shop's or a payment QR code held up by mistake is
# no one's refusal, and must not read STOP to the person nor look like the waiting screen.
REASON_LOOK = {"not_a_code": "NOT_A_CODE"}
REASON_HEADLINE = {"not_a_code": "无法识别  NOT A CODE"}
# A verdict the kiosk could not really make (its lists or clock, or a code it could not read) is grey, the
# colour of "not decided": its headline says why, never STOP, which would tell the person they were refused.
GREY_HEADLINE = {
    "stale_lists": "名单过期  LISTS OUT OF DATE",
    "no_trust_list": "暂停服务  NOT READY",
    "no_status_list": "名单未同步  LIST NOT SYNCED",
    "clock_wrong": "时钟错误  CLOCK WRONG",
    "malformed": "无法读取  CODE UNREADABLE",
    "cannot_check": "无法核验  CANNOT CHECK",  # the kiosk's own fault (scanner_app.loop): nothing was decided
}
# With no verdict showing, the headline says whether the kiosk can decide at all, and if not, why:
# it never invites a scan it cannot judge.
IDLE_HEADLINE = {
    "": "请出示随申码  SHOW CODE",
    "starting": "正在启动  STARTING",
    "camera": "摄像头未连接  NO CAMERA",
    "no_trust_list": "暂停服务  NOT READY",
    "stale_lists": "名单过期  LISTS OUT OF DATE",
    "clock_wrong": "时钟错误  CLOCK WRONG",
}
IDLE_MESSAGES: dict[str, Text] = {
    "": Text("请将随申码对准摄像头", "Hold your code up to the camera"),
    "starting": Text("正在启动，请稍候", "Starting up, please wait"),
    "camera": Text("摄像头未连接，正在重连；请检查线缆", "Camera disconnected: reconnecting; check the cable"),
    "no_trust_list": Text("尚未同步名单，请联系工作人员", "Lists not synced yet: call staff"),
    "stale_lists": Text("名单已过期，请联网同步或联系工作人员", "Lists out of date: connect to sync, or call staff"),
    "clock_wrong": Text(
        "本机时间不准，请校准时间（NTP）或联系工作人员", "The kiosk's clock is wrong: fix NTP, or call staff"
    ),
}
SCENARIO_LABELS = {"venue": "场所 · Venue", "hospital": "医院 · Hospital", "transit": "交通 · Transit"}
FONT_PATHS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-{w}.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-{w}.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-{w}.otf",
)
GREY_REASONS = frozenset(GREY_HEADLINE)


class FontMissing(RuntimeError):
    """No CJK font: install fonts-noto-cjk (scripts/system-deps does)."""


@functools.cache
def font_file(bold: bool = True) -> str:
    """Raises: FontMissing."""
    weight = "Bold" if bold else "Regular"
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", f"Noto Sans CJK SC:{weight.lower()}"], capture_output=True, text=True
        ).stdout.strip()
        if found and "CJK" in found and Path(found).exists():
            return found
    for pattern in FONT_PATHS:
        path = pattern.format(w=weight)
        if Path(path).exists():
            return path
    raise FontMissing("no CJK font found: install fonts-noto-cjk (scripts/system-deps installs it)")


@functools.cache
def font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_file(bold), size)


@dataclass(frozen=True)
class Screen:
    """What to show. ``decision`` None means idle (waiting for a code)."""

    decision: str | None = None
    reason: str = ""  # with no decision: "" (ready), or why the kiosk cannot decide (IDLE_HEADLINE)
    message_zh: str = IDLE_MESSAGES[""].zh
    message_en: str = IDLE_MESSAGES[""].en
    masked_name: str = ""
    sync_age_s: int | None = None
    offline: bool = False
    stale: bool = False
    scans_today: int = 0
    scenario: str = ""

    @property
    def headline(self) -> str:
        if self.decision is None:
            return IDLE_HEADLINE.get(self.reason, IDLE_HEADLINE[""])
        return GREY_HEADLINE.get(self.reason) or REASON_HEADLINE.get(self.reason, HEADLINE[self.decision])

    @property
    def colour_key(self) -> str:
        if self.decision is None or self.reason in GREY_REASONS:
            return "GREY"
        return REASON_LOOK.get(self.reason, self.decision)


# What the window shows the moment it opens, before the camera, the lists or the first frame are ready.
STARTING = Screen(reason="starting", message_zh=IDLE_MESSAGES["starting"].zh, message_en=IDLE_MESSAGES["starting"].en)


def _age(seconds: int | None) -> tuple[str, str]:
    if seconds is None:
        return "未同步", "never synced"
    if seconds < 120:
        return f"{seconds} 秒前同步", f"synced {seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} 分钟前同步", f"synced {seconds // 60} min ago"
    return f"{seconds // 3600} 小时前同步", f"synced {seconds // 3600} h ago"


def _fit(draw: ImageDraw.ImageDraw, text: str, width: float, size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    """The largest font up to ``size`` that fits ``text`` into ``width`` (never below 60 % of ``size``)."""
    floor = int(size * 0.6)
    while size > floor and draw.textlength(text, font=font(size, bold)) > width:
        size = max(floor, int(size * 0.92))
    return font(size, bold)


MARGIN = 20


def status_line(
    draw: ImageDraw.ImageDraw, screen: Screen, w: int
) -> tuple[str, ImageFont.FreeTypeFont, str, ImageFont.FreeTypeFont]:
    """The top line's text and the scenario label, each with a font that keeps them apart on a ``w``
    wide screen: the label keeps its size, the text shrinks, then drops its English, then the count."""
    label = SCENARIO_LABELS.get(screen.scenario, screen.scenario)
    label_font = font(30, bold=False)
    if screen.reason == "starting":  # nothing read from the lists yet: "never synced" would be untrue
        return "", font(30, bold=False), label, label_font
    room = w - 3 * MARGIN - (draw.textlength(label, font=label_font) if label else 0)
    zh, en = _age(screen.sync_age_s)
    flags = [("离线", "OFFLINE")] * screen.offline + [("名单过期", "LISTS STALE")] * screen.stale
    count = (f"今日 {screen.scans_today} 次", f"{screen.scans_today} scans today")
    candidates = [
        "   |   ".join([f"{zh} · {en}", *(f"{a} {b}" for a, b in flags), f"{count[0]} · {count[1]}"]),
        "  |  ".join([zh, *(f"{a} {b}" for a, b in flags), count[0]]),
        "  |  ".join([zh, *(a for a, _ in flags), count[0]]),
        "  |  ".join([zh, *(a for a, _ in flags)]),
    ]
    for text in candidates:
        text_font = _fit(draw, text, room, 30, bold=False)
        if draw.textlength(text, font=text_font) <= room:
            return text, text_font, label, label_font
    return candidates[-1], font(18, bold=False), label, label_font


def render(preview: Frame | None, screen: Screen, size: tuple[int, int] = (W, H)) -> Frame:
    """The whole screen as a BGR image of ``size`` (width, height).

    The status line and banner change only with ``screen``, so they are drawn once and reused: the
    frame loop pays for the preview alone (text drawing costs ~9 ms a frame, the paste well under 1).
    """
    w, h = size
    canvas = np.zeros((h, w, 3), np.uint8)
    top, bottom = STATUS_H, h - BANNER_H
    if preview is not None and preview.size:
        ph, pw = preview.shape[:2]
        scale = min(w / pw, (bottom - top) / ph)
        shown = cv2.resize(preview, (max(1, int(pw * scale)), max(1, int(ph * scale))))
        if shown.ndim == 2:
            shown = cv2.cvtColor(shown, cv2.COLOR_GRAY2BGR)
        y, x = top + ((bottom - top) - shown.shape[0]) // 2, (w - shown.shape[1]) // 2
        canvas[y : y + shown.shape[0], x : x + shown.shape[1]] = shown
    status, banner = _overlay(screen, size)
    canvas[:STATUS_H] = status
    canvas[bottom:] = banner
    return canvas


@functools.lru_cache(maxsize=16)
def _overlay(screen: Screen, size: tuple[int, int]) -> tuple[Frame, Frame]:
    """The status line and the verdict banner for ``screen``, as BGR strips."""
    w, h = size
    bottom = h - BANNER_H
    image = Image.new("RGB", (w, h), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    key = screen.colour_key
    draw.rectangle([0, bottom, w - 1, h - 1], fill=COLOURS[key])
    ink = TEXT_ON[key]
    headline = screen.headline
    name_w = draw.textlength(screen.masked_name, font=font(72)) + 60 if screen.masked_name else 0
    draw.text((40, bottom + 18), headline, font=_fit(draw, headline, w - 80 - name_w, 92), fill=ink)
    if screen.masked_name:
        draw.text((w - 40, bottom + 30), screen.masked_name, font=font(72), fill=ink, anchor="ra")
    draw.text((40, bottom + 140), screen.message_zh, font=_fit(draw, screen.message_zh, w - 80, 56), fill=ink)
    draw.text((40, bottom + 218), screen.message_en, font=_fit(draw, screen.message_en, w - 80, 46, False), fill=ink)

    draw.rectangle([0, 0, w - 1, STATUS_H - 1], fill=(20, 20, 20))
    text, text_font, label, label_font = status_line(draw, screen, w)
    status_ink = (255, 210, 0) if screen.offline or screen.stale else (235, 235, 235)
    draw.text((MARGIN, 10), text, font=text_font, fill=status_ink)
    if label:
        draw.text((w - MARGIN, 10), label, font=label_font, fill=(235, 235, 235), anchor="ra")
    bgr = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
    return bgr[:STATUS_H].copy(), bgr[bottom:].copy()
