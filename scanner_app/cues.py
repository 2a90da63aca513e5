"""What happens besides the screen: a sound per decision, and the gate hook on ALLOW. Never blocks the loop."""

from __future__ import annotations

import io
import logging
import math
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.request
import wave
from pathlib import Path

from .ui import GREY_REASONS

log = logging.getLogger(__name__)
# (frequency Hz, duration s) per tone: one high beep passes, two low ones stop, a rising pair refers, a
# short falling pair says "that is not a Suishenma code" (neither a pass nor a refusal), and one longer
# mid tone says "not decided" (the grey screens: the kiosk's lists or clock, or an unreadable code)
TONES = {
    "ALLOW": [(1320, 0.15)],
    "DENY": [(330, 0.18), (0, 0.08), (330, 0.18)],
    "REFER": [(660, 0.12), (880, 0.12)],
    "NOT_A_CODE": [(784, 0.07), (523, 0.1)],
    "GREY": [(587, 0.3)],
}
# Verdicts whose reason, not decision, picks the sound, as it picks the banner in ui.py: a grey verdict is the
# kiosk's own trouble, and must not sound like a refusal while its screen says it is none
REASON_CUES = {"not_a_code": "NOT_A_CODE"} | {reason: "GREY" for reason in GREY_REASONS}
PLAYERS = ("aplay", "paplay", "pw-play")


def wav_bytes(tones: list[tuple[int, float]], rate: int = 16000) -> bytes:
    frames = bytearray()
    for freq, seconds in tones:
        for i in range(int(rate * seconds)):
            value = 0.4 * math.sin(2 * math.pi * freq * i / rate) if freq else 0.0
            frames += struct.pack("<h", int(value * 32767))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()


def cue(decision: str, reason: str) -> str:
    """The sound for a verdict (a key of ``TONES``): its decision's, unless its reason has its own."""
    return REASON_CUES.get(reason, decision)


class Sound:
    """Plays a short WAV per decision with the first audio player found, else rings the terminal bell."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.player = next((p for p in PLAYERS if shutil.which(p)), None)
        self._dir = Path(tempfile.mkdtemp(prefix="suishenma-sounds-"))
        for decision, tones in TONES.items():
            (self._dir / f"{decision}.wav").write_bytes(wav_bytes(tones))

    def play(self, decision: str) -> None:
        """Play ``decision``'s sound (a key of ``TONES``, see ``cue``) in the background."""
        if not self.enabled:
            return
        if self.player is None:
            sys.stderr.write("\a")
            sys.stderr.flush()
            return
        path = self._dir / f"{decision}.wav"
        try:
            subprocess.Popen(
                [self.player, "-q", str(path)] if self.player == "aplay" else [self.player, str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            log.warning("sound cue failed: %s", exc)


class GateHook:
    """On ALLOW: run a command and/or POST the verdict as JSON to a local turnstile controller, in a thread."""

    def __init__(self, command: str | None = None, url: str | None = None, timeout: float = 2.0) -> None:
        self.command = shlex.split(command) if command else None
        self.url = url
        self.timeout = timeout
        self.fired = 0
        self._threads: list[threading.Thread] = []

    def fire(self, verdict_json: bytes) -> None:
        if not self.command and not self.url:
            return
        self.fired += 1
        self._threads = [t for t in self._threads if t.is_alive()]
        t = threading.Thread(target=self._run, args=(verdict_json,), daemon=True)
        self._threads.append(t)
        t.start()

    def drain(self) -> None:
        """Wait for hooks still running (each is bounded by ``timeout``): a gate opened by the last
        code of a video or before a shutdown must not be cut off when the process exits."""
        for t in self._threads:
            t.join(2 * self.timeout + 1)
        self._threads = []

    def _run(self, body: bytes) -> None:
        if self.command:
            try:
                subprocess.run(
                    self.command,
                    input=body,
                    timeout=self.timeout,
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.error("gate command failed: %s", exc)
        if self.url:
            req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    r.read()
            except OSError as exc:
                log.error("gate controller at %s failed: %s", self.url, exc)
