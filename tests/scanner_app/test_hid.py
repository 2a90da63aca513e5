"""Keyboard-wedge readers: codes typed as keys, split, garbled by a layout, or typed half."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner_app.hid import KEYPAD, Assembler, HidSource, StdinSource, repair
from scanner_app.loop import Scanner
from suishenma import Status
from verifier import Verifier
from verifier.fetch import HttpxFetcher

from ..verifier.sim import IssuerSim

SHIFTED = {"$": 5, "%": 6, "*": 9, "+": 13, ":": 39}
PLAIN = {"-": 12, ".": 52, "/": 53, " ": 57, **{str(d): 2 + (d - 1) % 10 for d in range(10)}}
LETTERS = {
    c: code
    for row, start in (("QWERTYUIOP", 16), ("ASDFGHJKL", 30), ("ZXCVBNM", 44))
    for code, c in enumerate(row, start)
}
SHIFT, ENTER = 42, 28


@dataclass
class Event:
    type: int
    code: int
    value: int
    at: float

    def timestamp(self) -> float:
        return self.at


class FakeDevice:
    """An input device holding queued events: ``read_one`` is all HidSource uses."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def read_one(self) -> Event | None:
        return self.events.pop(0) if self.events else None

    def type(self, text: str, at: float, gap: float = 0.002, enter: bool = True) -> float:
        """Queue the key events a US-layout wedge engine sends for ``text`` (upper case via Shift)."""
        for ch in text:
            shift = ch in SHIFTED or ch in LETTERS
            code = SHIFTED.get(ch) or PLAIN.get(ch) or LETTERS[ch]
            if shift:
                self.events.append(Event(1, SHIFT, 1, at))
            self.events += [Event(1, code, 1, at), Event(1, code, 0, at)]
            if shift:
                self.events.append(Event(1, SHIFT, 0, at))
            at += gap
        if enter:
            self.events += [Event(1, ENTER, 1, at), Event(1, ENTER, 0, at)]
        return at


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def drain(source: HidSource | StdinSource, clock: Clock, until: float) -> list[str]:
    codes = []
    while clock.t < until:
        code = source.read()
        if code is not None:
            codes.append(code)
        clock.t += 0.01
    return codes


def test_key_codes_match_the_kernels() -> None:
    ecodes = pytest.importorskip("evdev").ecodes
    assert ecodes.KEY_4 == 5 and ecodes.KEY_SEMICOLON == 39 and ecodes.KEY_KPASTERISK == 55
    assert ecodes.KEY_KPSLASH == 98 and ecodes.KEY_KPPLUS == 78 and ecodes.KEY_Q == 16 and ecodes.KEY_Z == 44


def test_every_qr_alphanumeric_character_survives_the_key_map() -> None:
    """QR alphanumeric mode: 0-9, A-Z, space and $ % * + - . / : — most of them shifted keys."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    clock, device = Clock(), FakeDevice()
    device.type("SM1:" + alphabet, clock.t)
    source = HidSource(lambda: device, clock=clock)
    assert drain(source, clock, clock.t + 1) == ["SM1:" + alphabet]


def test_keypad_symbols_and_caps_lock() -> None:
    clock, device = Clock(), FakeDevice()
    at = clock.t
    events = [Event(1, 58, 1, at), Event(1, 58, 0, at)]  # Caps Lock on: letters come without Shift
    events += [Event(1, LETTERS["S"], 1, at), Event(1, LETTERS["M"], 1, at), Event(1, 2, 1, at)]
    keypad = {v: k for k, v in KEYPAD.items()}
    events += [Event(1, SHIFT, 1, at), Event(1, SHIFTED[":"], 1, at), Event(1, SHIFT, 0, at)]
    events += [Event(1, keypad[c], 1, at) for c in "*+/-."] + [Event(1, 96, 1, at)]  # keypad Enter
    device.events = events
    assert drain(HidSource(lambda: device, clock=clock), clock, clock.t + 1) == ["SM1:*+/-."]


def test_half_typed_code_is_dropped_when_the_keys_stop() -> None:
    clock, device = Clock(), FakeDevice()
    at = device.type("SM1:ABC", clock.t, enter=False)  # the phone moved: the engine stops mid-code
    source = HidSource(lambda: device, clock=clock)
    assert drain(source, clock, at + 1.0) == []
    assert source.assembler.half_typed == 1
    # the next scan comes in whole, and the stale half does not stick to its front
    device.type("SM1:XYZ", clock.t)
    assert drain(source, clock, clock.t + 1) == ["SM1:XYZ"]


def test_gap_between_keys_splits_off_the_typed_half() -> None:
    clock, device = Clock(), FakeDevice()
    at = device.type("SM1:AB", clock.t, enter=False)
    device.type("SM1:CD", at + 0.5)  # the rest never came; a new code half a second later
    source = HidSource(lambda: device, clock=clock)
    assert drain(source, clock, at + 2) == ["SM1:CD"] and source.assembler.half_typed == 1


def test_unplugged_reader_is_reopened() -> None:
    clock, device = Clock(), FakeDevice()
    opened = []

    class Gone:
        def read_one(self) -> Event | None:
            raise OSError(19, "No such device")

    def opener() -> Gone | FakeDevice:
        opened.append(1)
        return Gone() if len(opened) == 1 else device

    source = HidSource(opener, clock=clock)
    assert source.read() is None and not source.connected
    device.type("SM1:OK", clock.t)
    assert drain(source, clock, clock.t + 2) == ["SM1:OK"] and len(opened) == 2


@pytest.mark.parametrize(
    ("lines", "codes"),
    [
        pytest.param([("SM1:\n", 0.0), ("ABC$DEF\n", 0.1)], ["SM1:ABC$DEF"], id="prefix-sent-apart"),
        pytest.param([("SM1:ABC\n", 0.0), ("DEF\n", 0.01)], ["SM1:ABCDEF"], id="line-break-inside"),
        pytest.param([("SM1:ABC\n", 0.0), ("SM1:DEF\n", 0.01)], ["SM1:ABC", "SM1:DEF"], id="two-codes"),
        pytest.param([("SM1:ABC\n", 0.0), ("DEF\n", 1.0)], ["SM1:ABC", "DEF"], id="too-late-to-join"),
        pytest.param([("sm1;abc=d\r\n", 0.0)], ["SM1:ABC+D"], id="caps-and-shift-lost"),
        pytest.param([("\n", 0.0), ("SM1:A B\n", 0.2)], ["SM1:A B"], id="blank-line-and-inner-space"),
    ],
)
def test_split_and_garbled_lines(lines: list[tuple[str, float]], codes: list[str]) -> None:
    a = Assembler()
    out = []
    for text, at in lines:
        a.line(text, 100 + at)
        out += [c for t in (0.0, 0.02) if (c := a.poll(100 + at + t))]
    out += [c for t in (0.5, 1.0) if (c := a.poll(102 + t))]
    assert out == codes


def test_repair_leaves_ambiguous_characters_alone() -> None:
    assert repair("SM1:4%ABC") == "SM1:4%ABC"  # a lost-Shift '$' typed as '4' cannot be told apart
    assert repair("hc1;x") == "HC1:X"


@pytest.fixture()
def kiosk(sim: IssuerSim, tmp_path: Path) -> Iterator[Verifier]:
    v = Verifier.init(tmp_path / "k", sim.url, sim.root.public(), "venue", "k1", fetcher=HttpxFetcher(attempts=1))
    assert v.sync(now=sim.now).ok
    yield v
    v.close()


def test_typed_codes_reach_the_same_verdict_path_as_the_camera(sim: IssuerSim, kiosk: Verifier) -> None:
    code = next(c for c in (sim.code(subject=bytes([i]) * 8) for i in range(200)) if any(x in c for x in "$%*+/"))
    garbled = code.replace("$", "4").replace("%", "5").replace("*", "8").replace("+", "=").replace("/", "?")
    red = sim.code(Status.RED)
    stdin = io.StringIO(f"{code.lower()}\n{garbled}\n{red[:4]}\n{red[4:]}\n{red[:20]}")
    out = io.StringIO()
    scanner = Scanner(StdinSource(stdin), kiosk, out=out)
    scanner.run()
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    # Caps Lock repaired: allowed; a layout that turned '$' into '4' cannot be repaired: refused with a reason;
    # the split red code joined and denied; the half line at the end of input refused as malformed
    assert [(g["decision"], g["reason"], g["decoder"]) for g in got[:3]] == [
        ("ALLOW", "ok", "hid"),
        ("DENY", got[1]["reason"], "hid"),
        ("DENY", "status_red", "hid"),
    ]
    assert got[1]["reason"] in {"malformed", "bad_signature", "not_a_code"}
    assert got[3]["decision"] == "DENY" and got[3]["reason"] in {"malformed", "not_a_code"}
