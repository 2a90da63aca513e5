"""The whole loop in headless gate mode on generated videos: JSON verdicts on stdout, the hook on ALLOW."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from scanner_app.cli import main
from suishenma import Status
from testing import synthetic_frames as synthetic

from ..verifier.sim import IssuerSim


def _video(path: Path, segments: list[tuple[str | None, int, bool]], seed: int = 0) -> Path:
    """Segments of (code text or None for an empty scene, frames, hard degradations)."""
    rng = random.Random(seed)
    frames = []
    for text, count, hard in segments:
        for _ in range(count):
            s = rng.randrange(1 << 30)
            frames.append(synthetic.empty_frame(s) if text is None else synthetic.frame(text, s, hard=hard))
    synthetic.write_video(path, frames)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert main(list(args)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_green_then_red_person_each_get_one_verdict(
    sim: IssuerSim, state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    green, red = sim.code(Status.GREEN), sim.code(Status.RED, subject=b"\x09" * 8)
    video = _video(tmp_path / "door.avi", [(None, 4, False), (green, 12, False), (None, 3, False), (red, 12, False)])
    verdicts = _run(capsys, "--state", str(state), "--video", str(video), "--headless", "--no-sync")
    assert [(v["decision"], v["reason"]) for v in verdicts] == [("ALLOW", "ok"), ("DENY", "status_red")]
    assert verdicts[0]["subject"] == "0102030405060708" and verdicts[1]["subject"] == "09" * 8
    assert verdicts[0]["message_zh"] and float(verdicts[0]["decode_ms"]) >= 0  # type: ignore[arg-type]


def test_hard_degradations_still_reach_a_verdict(
    sim: IssuerSim, state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Perspective, blur, glare, noise, JPEG, a phone at an angle: a second of frames is enough."""
    code = sim.code()
    video = _video(tmp_path / "hard.avi", [(code, 30, True)], seed=3)
    verdicts = _run(capsys, "--state", str(state), "--video", str(video), "--headless", "--no-sync")
    assert [v["decision"] for v in verdicts] == ["ALLOW"]


def test_garbage_frames_and_foreign_codes_do_not_stop_the_loop(
    sim: IssuerSim, state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise = [np.random.default_rng(i).integers(0, 256, (720, 1280, 3), dtype=np.uint8) for i in range(5)]
    frames = [*noise, synthetic.frame("https://example.com/not-ours", 1, hard=False)] * 2
    frames += [synthetic.frame(sim.code(), 2, hard=False)] * 3
    synthetic.write_video(tmp_path / "junk.avi", frames)
    verdicts = _run(capsys, "--state", str(state), "--video", str(tmp_path / "junk.avi"), "--headless", "--no-sync")
    # the foreign code shows up twice within a few seconds: one verdict, as for a code held still
    assert [(v["decision"], v["reason"]) for v in verdicts] == [("DENY", "not_a_code"), ("ALLOW", "ok")]


def test_allow_runs_the_gate_hook(
    sim: IssuerSim, state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = tmp_path / "opened.jsonl"
    hook = f"{sys.executable} -c \"import sys; open({str(opened)!r}, 'a').write(sys.stdin.read() + chr(10))\""
    yellow = sim.code(Status.YELLOW, subject=b"\x07" * 8)
    video = _video(tmp_path / "gate.avi", [(sim.code(), 6, False), (None, 2, False), (yellow, 6, False)])
    verdicts = _run(
        capsys, "--state", str(state), "--video", str(video), "--headless", "--no-sync", "--hook-command", hook
    )
    assert [v["decision"] for v in verdicts] == ["ALLOW", "DENY"]
    lines = opened.read_text().splitlines()  # the scanner waits for its hooks before it exits
    assert len(lines) == 1 and json.loads(lines[0])["decision"] == "ALLOW"


def test_missing_state_or_source_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--state", str(tmp_path / "none"), "--video", "x.avi", "--headless"]) == 2
    assert "init" in capsys.readouterr().err
    assert main(["--video", "x.avi", "--headless"]) == 2


def test_version_and_usage_without_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("suishenma-scanner ")
    assert main([]) == 2 and "usage: suishenma-scanner" in capsys.readouterr().err
