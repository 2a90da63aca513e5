"""The frame loop's side effects: the turnstile POST on ALLOW, and a slow sync that never stalls frames."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scanner_app import Scanner, SyncThread
from scanner_app.cues import GateHook, wav_bytes
from scanner_app.sources import EndOfStream
from testing import synthetic_frames as synthetic

CODE_A = "SM1:" + "A" * 60
CODE_B = "SM1:" + "B" * 60


class Verdict:
    def __init__(self, decision: str) -> None:
        self.decision, self.reason = decision, "ok" if decision == "ALLOW" else "status_red"
        self.message_zh, self.message_en = "通过", "Pass"
        self.display = {"masked_name": "张*三"}
        self.subject, self.elapsed_ms = "01" * 8, 0.2


class FakeVerifier:
    def __init__(self, hang: threading.Event | None = None) -> None:
        self.hang = hang  # sync blocks until this is set: a network that hangs
        self.syncing = threading.Event()
        self.syncs = 0
        self.decisions = {CODE_A: "ALLOW", CODE_B: "DENY"}

    def verify(self, text: str, now: float | None = None) -> Any:
        return Verdict(self.decisions.get(text, "DENY"))

    def sync(self, now: float | None = None) -> Any:
        self.syncs += 1
        self.syncing.set()
        if self.hang is not None:
            self.hang.wait(60)
        return type("R", (), {"ok": False, "errors": ["timeout"], "updated": []})()

    def health(self, now: float | None = None) -> Any:
        return type("H", (), {"offline": True, "stale": False, "scans_today": 0, "sync_age_s": None})()


class Frames:
    def __init__(self, frames: list[Any], delay: float = 0.0) -> None:
        self.frames, self.delay, self.i = frames, delay, 0

    def read(self) -> Any:
        if self.i >= len(self.frames):
            raise EndOfStream
        time.sleep(self.delay)
        self.i += 1
        return self.frames[self.i - 1]


def test_allow_posts_the_verdict_to_the_turnstile_controller() -> None:
    received: list[dict[str, Any]] = []

    class Turnstile(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Turnstile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/open"
        frames = [synthetic.frame(CODE_B, 1, hard=False)] * 3 + [synthetic.frame(CODE_A, 2, hard=False)] * 3
        out = io.StringIO()
        hook = GateHook(url=url)
        Scanner(Frames(frames), FakeVerifier(), out=out, hook=hook).run()
        hook.drain()
        assert [json.loads(line)["decision"] for line in out.getvalue().splitlines()] == ["DENY", "ALLOW"]
        assert len(received) == 1 and received[0]["decision"] == "ALLOW" and received[0]["display"]["masked_name"]
    finally:
        server.shutdown()


def test_a_hanging_sync_never_stalls_the_frame_loop() -> None:
    release = threading.Event()
    verifier = FakeVerifier(hang=release)
    sync = SyncThread(verifier, interval=0.1)
    sync.start()
    try:
        assert verifier.syncing.wait(30)  # the first sync has started, and hangs until released
        frames = [synthetic.empty_frame(i) for i in range(30)]
        stats = Scanner(Frames(frames), verifier).run()
        assert stats.frames == 30 and not release.is_set()  # every frame handled while the sync hung
        assert verifier.syncs == 1 and sync.is_alive()
    finally:
        release.set()
        sync.stop()


def test_sound_cues_are_distinct_wav_files() -> None:
    allow, deny = wav_bytes([(1320, 0.15)]), wav_bytes([(330, 0.18), (0, 0.08), (330, 0.18)])
    assert allow[:4] == b"RIFF" and deny[:4] == b"RIFF" and len(deny) > len(allow)


def test_screen_says_camera_disconnected_and_returns_to_idle() -> None:
    from scanner_app.ui import Screen

    shown: list[Screen] = []

    class Display:
        def show(self, frame: Any, screen: Screen) -> bool:
            shown.append(screen)
            return True

    class Camera:
        connected = True
        n = 0

        def read(self) -> Any:
            Camera.n += 1
            if Camera.n > 40:
                raise EndOfStream
            Camera.connected = not 5 <= Camera.n < 15
            return synthetic.empty_frame(1) if Camera.connected else None

    clock = {"t": 0.0}

    def tick() -> float:
        clock["t"] += 0.2
        return clock["t"]

    Scanner(Camera(), FakeVerifier(), display=Display(), clock=tick, verdict_hold_s=1.0).run()
    reasons = [s.reason for s in shown]
    assert "camera" in reasons
    assert any("摄像头未连接" in s.message_zh and s.headline == "摄像头未连接  NO CAMERA" for s in shown)
    assert reasons[-1] == "" and shown[-1].headline == "请出示随申码  SHOW CODE"  # back to idle once frames return


@pytest.mark.parametrize(
    ("health", "headline"),
    [
        ({"trust_list_version": None, "stale": True}, "暂停服务  NOT READY"),
        ({"trust_list_version": 3, "stale": True}, "名单过期  LISTS OUT OF DATE"),
        ({"trust_list_version": 3, "stale": False}, "请出示随申码  SHOW CODE"),
    ],
)
def test_kiosk_never_invites_a_scan_it_cannot_decide(health: dict[str, object], headline: str) -> None:
    from scanner_app.ui import Screen

    shown: list[Screen] = []

    class Display:
        def show(self, frame: Any, screen: Screen) -> bool:
            shown.append(screen)
            return True

    class Lists(FakeVerifier):
        def health(self, now: float | None = None) -> Any:
            return type("H", (), {"offline": False, "scans_today": 0, "sync_age_s": 5, **health})()

    frames = [synthetic.empty_frame(i) for i in range(3)]
    Scanner(Frames(frames), Lists(), display=Display()).run()
    assert shown[-1].headline == headline and shown[-1].decision is None


def test_kiosk_whose_clock_was_set_back_after_a_sync_shows_clock_wrong(state: Any, sim: Any) -> None:
    """The verifier's clock floor reaches the screen: CLOCK WRONG, and a code from then is refused for it."""
    from scanner_app.ui import Screen
    from verifier import Verifier

    shown: list[Screen] = []

    class Display:
        def show(self, frame: Any, screen: Screen) -> bool:
            shown.append(screen)
            return True

    from verifier import HttpxFetcher

    sim.publish_trust(2, at=sim.now - 2 * 86400)  # lists signed two days ago, synced now
    sim.publish_status("SH", 2, at=sim.now - 2 * 86400)
    with Verifier.open(state, fetcher=HttpxFetcher(attempts=1, clock=lambda: float(sim.now)), now=sim.now) as v:
        assert v.sync(now=sim.now).ok
    back = sim.now - 3600  # then the clock set back an hour
    out = io.StringIO()
    with Verifier.open(state, now=back) as v:
        frames = [synthetic.frame(sim.code(at=back), 3)] + [synthetic.empty_frame(i) for i in range(3)]
        ticks = iter(range(10_000))
        clock = lambda: back + next(ticks) * 0.5  # noqa: E731  (half a second a frame)
        Scanner(Frames(frames), v, display=Display(), out=out, clock=clock, verdict_hold_s=1.0).run()
    assert json.loads(out.getvalue().splitlines()[0])["reason"] == "clock_wrong"
    assert shown[-1].decision is None and shown[-1].reason == "clock_wrong"
    assert "CLOCK WRONG" in shown[-1].headline


def test_rider_holding_the_phone_up_after_allow_is_not_shown_passback() -> None:
    """Transit anti-passback refuses the same credential's next presentations; the rider just let in keeps
    holding the phone (a new code each second): the screen stays on the ALLOW, no refusal sound. Another
    credential's passback, or this one's after the hold, is shown."""
    from scanner_app.ui import Screen

    texts = [f"SMD1:{c * 60}" for c in "ABCDE"]
    subjects = {texts[0]: "rider", texts[1]: "rider", texts[2]: "rider", texts[3]: "other", texts[4]: "rider"}

    class Transit(FakeVerifier):
        def verify(self, text: str, now: float | None = None) -> Any:
            v = Verdict("ALLOW" if text == texts[0] else "DENY")
            v.reason, v.subject = ("ok" if text == texts[0] else "passback"), subjects[text]
            return v

    shown: list[Screen] = []
    played: list[str] = []

    class Display:
        def show(self, frame: Any, screen: Screen) -> bool:
            shown.append(screen)
            return True

    class Sound:
        def play(self, decision: str) -> None:
            played.append(decision)

    # one frame each; the clock moves 1 s a frame, and 5 s before the last (past the 3 s hold)
    times = iter([0.0, 1.0, 2.0, 3.0, 9.0] + [9.0] * 100)
    clock_at = {"t": 0.0}

    def clock() -> float:
        return clock_at["t"]

    class Timed(Frames):
        def read(self) -> Any:
            clock_at["t"] = next(times)
            return super().read()

    frames = [synthetic.frame(t, 3) for t in texts]
    out = io.StringIO()
    Scanner(Timed(frames), Transit(), display=Display(), sound=Sound(), out=out, clock=clock).run()  # type: ignore[arg-type]
    reasons = [(json.loads(line)["reason"]) for line in out.getvalue().splitlines()]
    assert reasons == ["ok", "passback", "passback", "passback", "passback"]  # every verdict is still recorded
    assert played == ["ALLOW", "DENY", "DENY"]  # the other credential, and the rider after the hold
    assert [s.reason for s in shown[:3]] == ["ok", "ok", "ok"]  # the frames of the rider's repeats
    assert shown[3].reason == "passback" and shown[4].reason == "passback"
