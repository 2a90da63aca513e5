"""The frame loop: read, decode, verify once per code, show or print the verdict; sync in the background.

Nothing a frame contains can stop the loop: bad frames are skipped, a vanished camera reconnects, a code that
verify fails on shows CANNOT CHECK and is tried again, and sync runs in its own thread so a slow network never
stalls the camera. A verdict stays up only while its own code stays in view.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TextIO

from suishenma.texts import Text

from ._types import Frame
from .cues import GateHook, Sound, cue
from .decode import Decoder
from .dedup import Dedup
from .sources import EndOfStream, FrameSource
from .ui import IDLE_MESSAGES, Screen

_IDLE_REASONS = frozenset(IDLE_MESSAGES) - {"camera"}  # waiting screens; "camera" is held while away
log = logging.getLogger(__name__)
UNREADABLE_FRAMES = 8  # a symbol seen but not decoded this many frames in a row: ask to adjust the phone
# When verify itself fails (its database locked, its disk full), nothing was decided for the person in front:
# the screen says so in the grey CANNOT CHECK look (never the previous person's verdict, never STOP), and the
# code still in view is tried again after RETRY_FIRST_S, then twice as long each time up to RETRY_MAX_S, so a
# lasting fault neither spins the loop nor leaves the person waiting long once it clears.
NOT_CHECKED = Text(
    "暂时无法核验，请稍候再试或联系工作人员", "Cannot check codes right now: try again shortly, or call staff"
)
# (decision, reason) of that screen: the gate stays shut; the reason gives its grey CANNOT CHECK banner and
# neutral sound only (it is the kiosk's, not a verifier's: nothing is recorded under it)
NOT_CHECKED_LOOK = ("DENY", "cannot_check")
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 4.0


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
    verify_errors: int = 0  # verify raised: no verdict for that code
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
        # the code whose verdict (or CANNOT CHECK) is on screen, and that verdict's subject: only that code in
        # view keeps it up, never someone else's code that dedup has already seen
        self._shown_code: str | None = None
        self._shown_subject: str | None = None
        self._failed: tuple[str, float] | None = None  # the code verify last failed on, and when to retry it
        self._failures = 0  # verify failures in a row: the retry delay doubles with each

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
        text = decoded.text
        if not self._fresh(text, now):
            if self._screen.decision is not None and text == self._shown_code:  # its verdict stays up
                self._shown_at = now
            return
        verdict = self._verify(text, now)
        if verdict is not None:
            self._emit(verdict, text, decoded.decoder, decoded.ms, now)

    def _typed(self, text: str) -> None:
        """A code from a keyboard-wedge source: the same dedup, verify, screen, sound and gate hook."""
        now = self.clock()
        self.stats.decoded += 1
        if not self._fresh(text, now):
            return
        verdict = self._verify(text, now)
        if verdict is not None:
            self._emit(verdict, text, "hid", 0.0, now)

    def _fresh(self, text: str, now: float) -> bool:
        """Whether ``text`` needs a verdict: dedup's answer, except that a code verify failed on is due again
        at its retry time (dedup has seen it, but it was never decided)."""
        seen = not self.dedup.fresh(text, now)  # asked either way: it marks the code as in view
        if self._failed is not None and self._failed[0] == text:
            return now >= self._failed[1]
        return not seen

    def _verify(self, text: str, now: float) -> Any | None:
        """The verdict on ``text``; None when verify raised, after showing CANNOT CHECK in its place."""
        try:
            verdict = self.verifier.verify(text, now=now)
        except Exception:
            self.stats.verify_errors += 1
            self._failures += 1
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (self._failures - 1))
            self._failed = (text, now + delay)
            log.exception("the code in view could not be verified; retrying in %.1f s", delay)
            self._not_checked(text, now)
            return None
        self._failed, self._failures = None, 0
        self.stats.verdicts += 1
        self.stats.verify_ms.append(float(getattr(verdict, "elapsed_ms", 0.0)))
        return verdict

    def _not_checked(self, text: str, now: float) -> None:
        """Take the previous verdict down: this code was not decided. One neutral sound per code, not one per
        retry."""
        decision, reason = NOT_CHECKED_LOOK
        showing = self._screen
        already = showing.decision is not None and self._shown_code == text and showing.message_en == NOT_CHECKED.en
        if self.sound and not already:
            self.sound.play(cue(decision, reason))
        shown = replace(
            self._screen,
            decision=decision,
            reason=reason,
            message_zh=NOT_CHECKED.zh,
            message_en=NOT_CHECKED.en,
            masked_name="",
        )
        self._set_screen(shown, now, code=text)

    def _emit(self, verdict: Any, text: str, decoder: str, decode_ms: float, now: float) -> None:
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
        if (
            record["reason"] == "passback"
            and subject
            and verdict.subject == subject
            and now - admitted_at <= self.hold
            and self._screen.decision == "ALLOW"
            and self._shown_subject == subject
        ):
            # the rider just let in still holds the phone up (its code changes every second): their ALLOW, still
            # on screen, stays up without a refusal sound rather than turning red behind them; the new code is
            # theirs too, so it keeps that verdict up while in view
            self._admitted = (subject, now)
            self._shown_at, self._shown_code = now, text
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
        self._set_screen(shown, now, code=text, subject=verdict.subject)

    def _camera_state(self) -> None:
        """Say so on screen while the camera is away (the source keeps reconnecting)."""
        if getattr(self.source, "connected", True):
            return
        if self._screen.reason != "camera":
            zh, en = IDLE_MESSAGES["camera"]
            self._set_screen(replace(self._screen, decision=None, reason="camera", message_zh=zh, message_en=en), 0.0)
        self._shown_at = self.clock()  # keep the message up while the camera is away

    def _set_screen(self, screen: Screen, now: float, code: str | None = None, subject: str | None = None) -> None:
        """Show ``screen`` from ``now``: the verdict on ``code`` (for ``subject``), or no code's at all."""
        self._screen, self._shown_at = screen, now
        self._shown_code, self._shown_subject = code, subject
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
