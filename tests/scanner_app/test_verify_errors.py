"""When verify fails, or a verdict is grey: the screen and the sound tell the person in front the truth.

A code is decoded (and so seen by dedup) before verify runs; if verify then raises, that code was never
decided. The previous person's verdict must not stay up while this code is in view, the code must be tried
again (without spinning on a lasting fault), and the kiosk keeps running. A grey verdict (the kiosk's lists or
clock, an unreadable code) sounds neither like a pass nor like a refusal.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from scanner_app import Scanner, SyncThread
from scanner_app.cues import REASON_CUES, TONES, cue
from scanner_app.loop import NOT_CHECKED, RETRY_MAX_S
from scanner_app.ui import GREY_REASONS, Screen
from verifier import Verifier

from .test_loop import FakeVerifier, Verdict
from .test_rough_edges import CODE, MarkDecoder, Marked, Recorder

OTHER = "SM1:" + "B" * 60
CANNOT_CHECK = "无法核验  CANNOT CHECK"


class Locked(FakeVerifier):
    """PASS for CODE (张*三), STOP for OTHER (李*四); verify on OTHER raises "database is locked" for its
    first ``failures`` calls. Every call's text is kept."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls: list[str] = []

    def verify(self, text: str, now: float | None = None) -> Any:
        self.calls.append(text)
        if text == OTHER:
            if self.failures > 0:
                self.failures -= 1
                raise sqlite3.OperationalError("database is locked")
            v = Verdict("DENY")
            v.display = {"masked_name": "李*四"}
            return v
        return Verdict("ALLOW")


class Sound:
    def __init__(self) -> None:
        self.played: list[str] = []

    def play(self, key: str) -> None:
        self.played.append(key)


def _run(marks: list[str | None], verifier: FakeVerifier, **kw: Any) -> tuple[Recorder, Any]:
    clock = {"t": 0.0}
    source = Marked(marks, clock)
    display = Recorder(clock)
    stats = Scanner(
        source,
        verifier,
        decoder=MarkDecoder(source),  # type: ignore[arg-type]
        display=display,
        clock=lambda: clock["t"],
        verdict_hold_s=3.0,
        **kw,
    ).run()
    return display, stats


def test_a_code_verify_failed_on_never_shows_the_previous_persons_verdict() -> None:
    """A passes; B's code is read, but verify raises for it, lastingly: while B holds up their phone the screen
    says CANNOT CHECK in grey, without A's name, and never STOP; the kiosk keeps reading frames."""
    marks: list[str | None] = [CODE] * 4 + [OTHER] * 16  # A at 0..1.5 s, B from 2 s to 9.5 s
    verifier = Locked(failures=10_000)
    display, stats = _run(marks, verifier)
    assert stats.frames == 20 and stats.verify_errors >= 2
    b_shown = [s for t, s in display.shown if t >= 2.0]
    assert len(b_shown) == 16
    for screen in b_shown:
        assert screen.headline == CANNOT_CHECK and screen.colour_key == "GREY", screen
        assert screen.masked_name == "" and "STOP" not in screen.headline
        assert (screen.message_zh, screen.message_en) == NOT_CHECKED
        assert any("\u4e00" <= ch <= "\u9fff" for ch in screen.message_zh)


def test_a_code_verify_failed_on_is_retried_with_backoff() -> None:
    """A lasting fault: B's code is tried again while in view, but with growing pauses, not on every frame
    (0.5 s a frame: tried at 2, 2.5, 3.5, 5.5 and 9.5 s within 2..11.5 s)."""
    marks: list[str | None] = [CODE] * 4 + [OTHER] * 20
    verifier = Locked(failures=10_000)
    _run(marks, verifier)
    tries = verifier.calls.count(OTHER)
    assert 2 <= tries <= 6 and tries < 20, verifier.calls
    assert RETRY_MAX_S <= 10  # a fault that clears is noticed within seconds, whatever came before


def test_a_code_verify_failed_on_gets_its_own_verdict_once_verify_works_again() -> None:
    """The fault clears (the database unlocked): B's code, still in view, is decided; B's STOP with B's name
    replaces CANNOT CHECK and stays up while B's code stays in view. One record per verdict, none for the failure."""
    marks: list[str | None] = [CODE] * 4 + [OTHER] * 10
    verifier = Locked(failures=1)
    out = io.StringIO()
    display, stats = _run(marks, verifier, out=out)
    assert verifier.calls == [CODE, OTHER, OTHER]  # one failure, one retry that worked
    assert stats.verify_errors == 1 and stats.verdicts == 2
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["decision"] for r in records] == ["ALLOW", "DENY"]
    headlines = [(s.headline, s.masked_name) for t, s in display.shown if t >= 2.0]
    assert headlines[0] == (CANNOT_CHECK, "")
    assert headlines[1:] == [("禁止通行  STOP", "李*四")] * 9


def test_not_ready_plays_one_neutral_sound_however_many_retries_fail() -> None:
    marks: list[str | None] = [CODE] * 4 + [OTHER] * 16
    sound = Sound()
    _run(marks, Locked(failures=10_000), sound=sound)
    assert sound.played == ["ALLOW", "GREY"]


def test_a_typed_code_verify_failed_on_takes_the_previous_verdict_down() -> None:
    """A keyboard-wedge reader: A passes, then B's code is typed and verify raises. CANNOT CHECK replaces A's
    PASS; B typing the code again, after the retry pause, gets B's verdict (the code was not left as seen)."""
    clock = {"t": 0.0}
    typed = iter([(0.0, CODE), (1.0, OTHER), (2.0, OTHER)])

    class Wedge:
        def read(self) -> Any:
            from scanner_app.sources import EndOfStream

            try:
                clock["t"], text = next(typed)
            except StopIteration:
                raise EndOfStream from None
            return text

    display = Recorder(clock)
    verifier = Locked(failures=1)
    stats = Scanner(Wedge(), verifier, display=display, clock=lambda: clock["t"]).run()  # type: ignore[arg-type]
    assert [(s.headline, s.masked_name) for _, s in display.shown] == [
        ("通过  PASS", "张*三"),
        (CANNOT_CHECK, ""),
        ("禁止通行  STOP", "李*四"),
    ]
    assert verifier.calls == [CODE, OTHER, OTHER] and stats.verify_errors == 1


def test_passback_keeps_only_the_riders_own_verdict_up() -> None:
    """The rider passes, then another person's red code is refused; the rider's next code (passback, within the
    hold) must show the rider's verdict, not keep the other person's STOP and name up in silence."""
    rider, other, again = "SMD1:" + "A" * 60, "SMD1:" + "B" * 60, "SMD1:" + "C" * 60

    class Transit(FakeVerifier):
        def verify(self, text: str, now: float | None = None) -> Any:
            v = Verdict("ALLOW" if text == rider else "DENY")
            v.reason = {rider: "ok", other: "status_red", again: "passback"}[text]
            v.subject = "other" if text == other else "rider"
            v.display = {"masked_name": "王*五" if text == other else "张*三"}
            return v

    sound = Sound()
    display, _ = _run([rider, other, again, again], Transit(), sound=sound)
    shown = [(s.reason, s.masked_name) for _, s in display.shown]
    assert shown[:2] == [("ok", "张*三"), ("status_red", "王*五")]
    assert shown[2:] == [("passback", "张*三")] * 2
    assert sound.played == ["ALLOW", "DENY", "DENY"]


def test_the_riders_next_code_keeps_their_allow_up_while_it_stays_in_view() -> None:
    """The rider just let in still holds the phone up, and its code changed: their ALLOW stays, silently, on
    every frame of the new code (verified once)."""
    rider, again = "SMD1:" + "A" * 60, "SMD1:" + "C" * 60

    class Transit(FakeVerifier):
        calls = 0

        def verify(self, text: str, now: float | None = None) -> Any:
            Transit.calls += 1
            v = Verdict("ALLOW" if text == rider else "DENY")
            v.reason, v.subject = ("ok" if text == rider else "passback"), "rider"
            return v

    sound = Sound()
    display, _ = _run([rider] * 2 + [again] * 10, Transit(), sound=sound)
    assert [s.headline for _, s in display.shown] == ["通过  PASS"] * 12
    assert sound.played == ["ALLOW"] and Transit.calls == 2


# Sound of grey verdicts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("decision", ["DENY", "REFER"])  # a hospital refers what it cannot judge
@pytest.mark.parametrize("reason", sorted(GREY_REASONS))
def test_a_grey_verdict_sounds_neutral_not_stop(decision: str, reason: str) -> None:
    assert cue(decision, reason) == "GREY"
    assert Screen(decision, reason).colour_key == "GREY"  # as the screen looks


def test_the_neutral_tone_is_its_own() -> None:
    others = [TONES[k] for k in ("ALLOW", "DENY", "REFER", "NOT_A_CODE")]
    assert TONES["GREY"] not in others
    assert set(REASON_CUES.values()) <= set(TONES)
    assert cue("DENY", "status_red") == "DENY" and cue("DENY", "not_a_code") == "NOT_A_CODE"


def test_a_stale_lists_verdict_in_the_loop_plays_the_neutral_tone() -> None:
    class Stale(FakeVerifier):
        def verify(self, text: str, now: float | None = None) -> Any:
            v = Verdict("DENY")
            v.reason, v.display = "stale_lists", {}
            return v

    sound = Sound()
    display, _ = _run([CODE] * 3, Stale(), sound=sound)
    assert sound.played == ["GREY"]
    assert display.shown[-1][1].headline == "名单过期  LISTS OUT OF DATE"


# A sync that raises is counted -----------------------------------------------------------------------------


def test_a_sync_that_raises_is_counted_as_a_failure_and_the_kiosk_reads_offline(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kiosk's sync thread calls sync through ``Metered``; a sync that raises (not one that reports
    problems) still raises sync_failures_total, so the SyncFailing alert can fire, and the thread goes on."""
    from scanner_app.metrics_server import KioskMetrics

    from .test_metrics_port import _scrape

    verifier = Verifier.open(state)
    calls: list[float | None] = []
    second = threading.Event()

    def locked(now: float | None = None) -> Any:
        calls.append(now)
        if len(calls) == 2:
            second.set()
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(verifier, "sync", locked)
    metrics = KioskMetrics.start(verifier, "127.0.0.1", 0)
    sync = SyncThread(metrics.metered, interval=3600)
    try:
        _, before = _scrape(metrics.port)
        assert sum(v for k, v in before.items() if k.startswith("suishenma_verifier_sync_failures_total")) == 0
        with pytest.raises(sqlite3.OperationalError):
            metrics.metered.sync()
        sync.start()
        assert second.wait(30)  # the thread's own sync (the wait bounds a hang only)
        sync.stop()
        sync.join(30)
        assert not sync.is_alive()  # it ended because it was stopped, not because the sync raised
        _, samples = _scrape(metrics.port)
        failures = {k: v for k, v in samples.items() if k.startswith("suishenma_verifier_sync_failures_total") and v}
        assert failures == {'suishenma_verifier_sync_failures_total{reason="internal"}': 2}, failures
        assert samples["suishenma_verifier_offline"] == 1
    finally:
        sync.stop()
        metrics.close()
        verifier.close()
