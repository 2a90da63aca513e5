"""Keyboard-wedge QR readers: codes typed as keystrokes, from standard input or a Linux input device.

Most kiosk hardware (unattended "digital sentinel" posts, turnstile readers) has a QR engine that types
what it reads, then Enter. Such a source's ``read()`` gives the code's text, which the frame loop sends
down the same verify, screen, sound and gate-hook path as a decoded camera frame.

Typing is lossy, and the losses are known:

- **Split codes**: some engines end a line inside a long code, or send the prefix ``SM1:`` apart.
  A line that arrives within ``join_s`` of the previous one and does not start a code continues it; a
  bare prefix waits up to ``key_timeout_s`` for the rest.
- **Half-typed codes**: the engine stops mid-code (a glare, a moved phone). A gap over ``key_timeout_s``
  between keys drops what was typed (engines type a whole code in tens of milliseconds).
- **Keyboard layout**: QR alphanumeric mode uses ``$ % * + - . / :`` and space, all but three of them
  shifted on a US keyboard. Through ``/dev/input`` (evdev) we read key codes and map them ourselves,
  so the host's layout cannot garble them; keypad keys map too. On standard input what the host's
  layout made of them is repaired where that is unambiguous (``repair``); anything else reaches the
  verifier, which refuses it with a reason (never a crash).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from .errors import ReaderUnavailable
from .sources import EndOfStream

log = logging.getLogger(__name__)
PREFIXES = ("SM1:", "HC1:")
KEY_TIMEOUT_S = 0.3
JOIN_S = 0.05
MAX_CODE_CHARS = 8192  # longer than any code: an engine stuck typing is cut off
EV_KEY = 1
KEY_DOWN, KEY_UP = 1, 0

# Linux key codes (input-event-codes.h, a stable kernel ABI) -> (plain, shifted) on a US layout.
_ROWS = {
    2: "1!", 3: "2@", 4: "3#", 5: "4$", 6: "5%", 7: "6^", 8: "7&", 9: "8*", 10: "9(", 11: "0)",
    12: "-_", 13: "=+", 26: "[{", 27: "]}", 39: ";:", 40: "'\"", 41: "`~", 43: "\\|", 51: ",<", 52: ".>",
    53: "/?", 57: "  ",
}  # fmt: skip
_LETTERS = "QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM"
for _start, _row in zip((16, 30, 44), _LETTERS, strict=True):
    for _i, _c in enumerate(_row):
        _ROWS[_start + _i] = _c.lower() + _c
KEYPAD = {55: "*", 71: "7", 72: "8", 73: "9", 74: "-", 75: "4", 76: "5", 77: "6", 78: "+", 79: "1", 80: "2",
          81: "3", 82: "0", 83: ".", 98: "/"}  # fmt: skip
ENTER_KEYS = {28, 96, 15}  # Enter, keypad Enter, Tab (some engines end a code with Tab)
SHIFT_KEYS = {42, 54}
CAPS_LOCK = 58
LETTER_KEYS = {k for k, v in _ROWS.items() if v[0].isalpha()}


def repair(text: str) -> str:
    """Undo what a keyboard layout unambiguously did to a code typed on standard input.

    Base45 (RFC 9285) has no lower case, ``;`` or ``=``: lower case is Caps Lock (or a layout without
    it) and becomes upper case; ``;`` and ``=`` are ``:`` and ``+`` with their Shift lost. A character
    the alphabet does hold (``4`` for a lost ``$``) cannot be told apart and is left for the verifier.
    """
    text = text.strip("\r\n\x00")
    if not any(c.islower() or c in ";=" for c in text):
        return text
    return text.upper().replace(";", ":").replace("=", "+")


def _starts_code(text: str) -> bool:
    return repair(text).startswith(PREFIXES)


@dataclass
class Assembler:
    """Keystrokes or lines in, whole codes out; pure (the times come in)."""

    key_timeout_s: float = KEY_TIMEOUT_S
    join_s: float = JOIN_S
    half_typed: int = 0  # codes dropped because the keys stopped coming
    _typing: list[str] = field(default_factory=list)
    _last_key: float = 0.0
    _held: str | None = None  # a finished line, kept a moment for a continuation
    _held_at: float = 0.0
    _ready: list[str] = field(default_factory=list)

    def key(self, char: str, at: float) -> None:
        self._expire(at)
        if len(self._typing) < MAX_CODE_CHARS:
            self._typing.append(char)
        self._last_key = at

    def enter(self, at: float) -> None:
        self._expire(at)
        if self._typing:
            self.line("".join(self._typing), at)
            self._typing = []

    def line(self, text: str, at: float) -> None:
        """A finished line (Enter seen): a code, or a piece of the one before it."""
        text = text.strip("\r\n")
        if not text:
            return
        if self._held is not None and not _starts_code(text) and at - self._held_at <= self._wait():
            self._held += text
        else:
            self._release()
            self._held = text
        self._held_at = at

    def poll(self, now: float) -> str | None:
        """The next whole code, once nothing more can belong to it."""
        self._expire(now)
        if self._held is not None and now - self._held_at > self._wait():
            self._release()
        return repair(self._ready.pop(0)) if self._ready else None

    def _wait(self) -> float:
        """How long a held line waits for more: a bare prefix as long as typing may pause, else a moment."""
        return self.key_timeout_s if self._held is not None and repair(self._held) in PREFIXES else self.join_s

    def _release(self) -> None:
        if self._held is not None:
            self._ready.append(self._held)
            self._held = None

    def _expire(self, now: float) -> None:
        if self._typing and now - self._last_key > self.key_timeout_s:
            self.half_typed += 1
            log.warning(
                "dropped %d characters of a half-typed code (keys stopped for %.2f s)",
                len(self._typing),
                now - self._last_key,
            )
            self._typing = []


class StdinSource:
    """Lines from standard input (a wedge reader typing into the kiosk's terminal); EndOfStream at EOF."""

    def __init__(
        self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic, assembler: Assembler | None = None
    ) -> None:
        self.assembler = assembler or Assembler()
        self.clock = clock
        self._lines: queue.Queue[tuple[str, float] | None] = queue.Queue()
        self._eof = False
        threading.Thread(target=self._pump, args=(stream,), name="stdin", daemon=True).start()

    def _pump(self, stream: TextIO) -> None:
        try:
            for line in iter(stream.readline, ""):
                self._lines.put((line[: MAX_CODE_CHARS + 2], self.clock()))
        except (OSError, ValueError, UnicodeDecodeError):
            log.exception("standard input failed")
        self._lines.put(None)

    def read(self) -> str | None:
        """Raises: EndOfStream once input has ended and every code in it was given out."""
        while True:
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._eof = True
                break
            self.assembler.line(*item)
        now = self.clock()
        code = self.assembler.poll(now if not self._eof else now + 3600)  # at EOF nothing more can follow
        if code is None and self._eof:
            raise EndOfStream
        return code

    def close(self) -> None:
        pass


class KeyDevice(Protocol):
    """What we need of ``evdev.InputDevice``: one method, so tests plug in a fake device."""

    def read_one(self) -> Any:
        """The next input event (``type``, ``code``, ``value``, ``timestamp()``), or None when none is waiting.

        Raises: OSError when the device is gone (unplugged).
        """
        ...


class HidSource:
    """Key events from a Linux input device (``--hid /dev/input/eventN``), decoded with our own key map.

    The device is grabbed (its keys stop reaching the console); an unplugged reader is reopened with
    backoff, like a camera.
    """

    def __init__(
        self,
        opener: Callable[[], KeyDevice],
        *,
        clock: Callable[[], float] = time.monotonic,
        assembler: Assembler | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self._open = opener
        self.clock = clock
        self.assembler = assembler or Assembler()
        self._device: KeyDevice | None = None
        self._retry_at = 0.0
        self._backoff = 0.5
        self._max_backoff = max_backoff
        self._shift = False
        self._caps = False
        self.connected = False

    def read(self) -> str | None:
        if self._device is None and not self._reopen():
            return None
        try:
            while (event := self._device.read_one() if self._device else None) is not None:
                if event.type == EV_KEY:
                    self._key(int(event.code), int(event.value), float(event.timestamp()))
        except OSError as exc:
            log.warning("keyboard-wedge reader gone (%s); reopening", exc)
            self._device, self.connected = None, False
            self._retry_at = self.clock() + self._backoff
            self._backoff = min(self._max_backoff, self._backoff * 2)
        return self.assembler.poll(self.clock())

    def _reopen(self) -> bool:
        if self.clock() < self._retry_at:
            return False
        try:
            self._device = self._open()
        except OSError as exc:
            log.error("无法打开扫码器（%s），稍后重试 | cannot open the keyboard-wedge reader (%s); retrying", exc, exc)
            self._retry_at = self.clock() + self._backoff
            self._backoff = min(self._max_backoff, self._backoff * 2)
            return False
        self.connected, self._backoff, self._shift = True, 0.5, False
        return True

    def _key(self, code: int, value: int, at: float) -> None:
        if code in SHIFT_KEYS:
            self._shift = value != KEY_UP
            return
        if value != KEY_DOWN:  # key release, or autorepeat (a held key is not typing)
            return
        if code == CAPS_LOCK:
            self._caps = not self._caps
        elif code in ENTER_KEYS:
            self.assembler.enter(at)
        elif code in KEYPAD:
            self.assembler.key(KEYPAD[code], at)
        elif code in _ROWS:
            plain, shifted = _ROWS[code][0], _ROWS[code][1]
            upper = self._shift != (self._caps and code in LETTER_KEYS)
            self.assembler.key(shifted if upper else plain, at)

    def close(self) -> None:
        ungrab = getattr(self._device, "ungrab", None)
        if ungrab:
            with contextlib.suppress(OSError):
                ungrab()


def open_evdev(path: str) -> KeyDevice:
    """Open and grab ``path`` through python-evdev (the scanner extra installs it on Linux).

    Raises:
        OSError: the device cannot be opened or grabbed (missing, or no permission: add the kiosk's user
            to the ``input`` group); ReaderUnavailable (an OSError) when python-evdev is not installed.
    """
    try:
        import evdev  # only the --hid source needs it
    except ImportError:
        raise ReaderUnavailable(
            "未安装 python-evdev：请安装扫码终端的依赖（pip install 'suishenma[scanner]'）",
            "python-evdev is not installed: install the scanner's extras (pip install 'suishenma[scanner]')",
        ) from None

    device = evdev.InputDevice(path)
    device.grab()
    return device  # type: ignore[no-any-return]
