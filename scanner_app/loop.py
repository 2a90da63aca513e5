"""The frame loop: read, decode, verify once per code, show or print the verdict; sync in the background.

Nothing a frame contains can stop the loop: bad frames are skipped, a vanished camera reconnects, and
sync runs in its own thread so a slow network never stalls the camera.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TextIO

from ._types import Frame
from .cues import GateHook, Sound, cue
from .decode import Decoder
from .dedup import Dedup
from .sources import EndOfStream, FrameSource
from .ui import IDLE_MESSAGES, Screen

_IDLE_REASONS = frozenset(IDLE_MESSAGES) - {"camera"}  # waiting screens; "camera" is held while away
log = logging.getLogger(__name__)
UNREADABLE_FRAMES = 8  # a symbol seen but not decoded this many frames in a row: ask to adjust the phone


class VerifierLike(Protocol):
    """What the loop needs of ``verifier.Verifier`` (tests pass fakes)."""

    def verify(self, text: str, now: float | None = None) -> Any: ...
    def sync(self, now: float | None = None) -> Any: ...
    def health(self, now: float | None = None) -> Any: ...


class Display(Protocol):
    def show(self, frame: Frame | None, screen: Screen) -> bool:
        """Draw; return False when the operator asked to quit."""
        ...


class SyncThread(threading.Thread):
    """Calls ``sync`` now and every ``interval`` seconds until stopped; failures are logged, never raised."""

    def __init__(self, verifier: VerifierLike, interval: float) -> None:
        super().__init__(name="sync", daemon=True)
        self.verifier = verifier
        self.interval = interval
        self.stop_event = threading.Event()
        self.runs = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                report = self.verifier.sync()
                self.runs += 1
                if getattr(report, "ok", True):
                    log.info("sync ok: %s", getattr(report, "updated", []) or "lists unchanged")
                else:
                    log.warning("sync incomplete: %s", "; ".join(getattr(report, "errors", [])))
            except Exception:
                log.exception("sync crashed; retrying at the next interval")
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()


@dataclass
class Stats:
    frames: int = 0
    bad_frames: int = 0
    decoded: int = 0
    verdicts: int = 0
    decode_ms: list[float] = field(default_factory=list)
    verify_ms: list[float] = field(default_factory=list)


class Scanner:
    def __init__(
        self,
        source: FrameSource,
        verifier: VerifierLike,
        *,
        decoder: Decoder | None = None,
        dedup: Dedup | None = None,
        out: TextIO | None = None,
        display: Display | None = None,
        sound: Sound | None = None,
        hook: GateHook | None = None,
        verdict_hold_s: float = 3.0,
        max_fps: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.verifier = verifier
        self.decoder = decoder or Decoder()
        self.dedup = dedup or Dedup()
        self.out = out
        self.display = display
        self.sound = sound
        self.hook = hook
        self.hold = verdict_hold_s
        self.min_period = 1.0 / max_fps if max_fps > 0 else 0.0
        self.clock = clock
        self.stats = Stats()
        self._screen = Screen()
        self._shown_at = 0.0
        self._health_at = -1.0
        self._admitted: tuple[str | None, float] = (None, float("-inf"))  # the last ALLOW's subject, and when
        self._unreadable = 0
        self._idle_reason = ""  # "" when the kiosk can decide; else an IDLE_HEADLINE key

    def run(self, max_frames: int | None = None, stop: threading.Event | None = None) -> Stats:
        while (max_frames is None or self.stats.frames < max_frames) and not (stop and stop.is_set()):
            started = time.perf_counter()
            try:
                frame = self.source.read()
            except EndOfStream:
                break
            except Exception:
                log.exception("frame source failed; retrying")
                frame = None
            if isinstance(frame, str):  # a code typed by a keyboard-wedge reader: no picture to decode
                self._typed(frame)
                if not self._show(None):
                    break
                continue
            if frame is None:
                self.stats.bad_frames += 1
                self._camera_state()
                if not self._show(None):
                    break
                time.sleep(0.01)
                continue
            self.stats.frames += 1
            try:
                self.step(frame)
            except BrokenPipeError:  # the reader of the verdict lines went away: the command ends (exit 141)
                raise
            except Exception:
                self.stats.bad_frames += 1
                log.exception("frame %d could not be processed", self.stats.frames)
            if not self._show(frame):
                break
            spare = self.min_period - (time.perf_counter() - started)
            if spare > 0:
                time.sleep(spare)
        return self.stats

    def step(self, frame: Frame) -> None:
        decoded = self.decoder.decode(frame)
        self.stats.decode_ms.append(decoded.ms)
        now = self.clock()
        if decoded.text is None:
            self._unreadable = self._unreadable + 1 if decoded.seen else 0
            if self._unreadable == UNREADABLE_FRAMES and now - self._shown_at > self.hold:
                zh, en = "无法识别，请调整手机角度或亮度", "Cannot read: tilt or brighten the phone"
                self._set_screen(
                    replace(self._screen, decision=None, reason="unreadable", message_zh=zh, message_en=en), now
                )
            return
        self._unreadable = 0
        self.stats.decoded += 1
        if not self.dedup.fresh(decoded.text, now):
            if self._screen.decision is not None:  # the same code still in view: its verdict stays up
                self._shown_at = now
            return
        verdict = self.verifier.verify(decoded.text, now=now)
        self.stats.verdicts += 1
        self.stats.verify_ms.append(float(getattr(verdict, "elapsed_ms", 0.0)))
        self._emit(verdict, decoded.decoder, decoded.ms, now)

    def _typed(self, text: str) -> None:
        """A code from a keyboard-wedge source: the same dedup, verify, screen, sound and gate hook."""
        now = self.clock()
        self.stats.decoded += 1
        if not self.dedup.fresh(text, now):
            return
        try:
            verdict = self.verifier.verify(text, now=now)
        except Exception:
            log.exception("a typed code could not be verified")
            return
        self.stats.verdicts += 1
        self.stats.verify_ms.append(float(getattr(verdict, "elapsed_ms", 0.0)))
        self._emit(verdict, "hid", 0.0, now)

    def _emit(self, verdict: Any, decoder: str, decode_ms: float, now: float) -> None:
        decision = str(verdict.decision)
        record = {
            "at": round(now, 3),
            "decision": decision,
            "reason": str(verdict.reason),
            "message_zh": verdict.message_zh,
            "message_en": verdict.message_en,
            "display": dict(verdict.display),
            "subject": verdict.subject,
            "decoder": decoder,
            "decode_ms": round(decode_ms, 2),
            "verify_ms": round(float(verdict.elapsed_ms), 2),
        }
        line = json.dumps(record, ensure_ascii=False)
        log.info("%s %s %s", decision, record["reason"], verdict.display.get("masked_name", ""))
        if self.out is not None:
            self.out.write(line + "\n")
            self.out.flush()
        subject, admitted_at = self._admitted
        if record["reason"] == "passback" and subject and verdict.subject == subject and now - admitted_at <= self.hold:
            # the rider just let in still holds the phone up (its code changes every second): the gate stays
            # open on screen, without a refusal sound, rather than turning red behind them
            self._admitted = (subject, now)
            self._shown_at = now
            return
        if decision == "ALLOW":
            self._admitted = (verdict.subject, now)
        if self.sound:
            self.sound.play(cue(decision, record["reason"]))
        if decision == "ALLOW" and self.hook:
            self.hook.fire(line.encode())
        shown = replace(
            self._screen,
            decision=decision,
            reason=str(verdict.reason),
            message_zh=verdict.message_zh,
            message_en=verdict.message_en,
            masked_name=verdict.display.get("masked_name", ""),
        )
        self._set_screen(shown, now)

    def _camera_state(self) -> None:
        """Say so on screen while the camera is away (the source keeps reconnecting)."""
        if getattr(self.source, "connected", True):
            return
        if self._screen.reason != "camera":
            zh, en = IDLE_MESSAGES["camera"]
            self._set_screen(replace(self._screen, decision=None, reason="camera", message_zh=zh, message_en=en), 0.0)
        self._shown_at = self.clock()  # keep the message up while the camera is away

    def _set_screen(self, screen: Screen, now: float) -> None:
        self._screen, self._shown_at = screen, now
        self._health_at = -1.0  # refresh the status line (today's count) at once

    def _show(self, frame: Frame | None) -> bool:
        if self.display is None:
            return True
        now = self.clock()
        if now - self._health_at >= 1.0:
            self._refresh_health(now)
        transient = self._screen.decision is not None or self._screen.reason not in _IDLE_REASONS
        if not transient or now - self._shown_at > self.hold:  # idle follows the lists' state as it changes
            self._screen = self._idle(self._screen)
        return self.display.show(frame, self._screen)

    def _idle(self, screen: Screen) -> Screen:
        """The waiting screen: ready for a code, or why the kiosk cannot decide one."""
        zh, en = IDLE_MESSAGES[self._idle_reason]
        return replace(screen, decision=None, reason=self._idle_reason, masked_name="", message_zh=zh, message_en=en)

    def _refresh_health(self, now: float) -> None:
        self._health_at = now
        try:
            h = self.verifier.health(now=now)
        except Exception:
            log.exception("health check failed")
            return
        age = getattr(h, "sync_age_s", None)  # since the last sync that succeeded, never a failed attempt
        if getattr(h, "trust_list_version", 0) is None:
            self._idle_reason = "no_trust_list"
        elif getattr(h, "clock_wrong", False):
            self._idle_reason = "clock_wrong"
        elif getattr(h, "stale", False):
            self._idle_reason = "stale_lists"
        else:
            self._idle_reason = ""
        self._screen = replace(
            self._screen,
            sync_age_s=int(age) if age is not None else None,
            offline=bool(getattr(h, "offline", False)),
            stale=bool(getattr(h, "stale", False)),
            scans_today=int(getattr(h, "scans_today", 0)),
            scenario=str(getattr(h, "scenario", "")),
        )
