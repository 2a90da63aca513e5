"""``scripts/demo`` (README "Quick start") runs again and again, and leaves nothing running on any way out.

Each run is the real demo in a subprocess, in its own folder (``--dir``), with a real issuer process.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.live_issuer import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "scripts" / "demo.py"


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they are printed, as on a terminal


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing run left behind under this test's folder is ended, so one failure stays one."""
    yield
    for line in _processes_in(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def _run(folder: Path, port: int) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(DEMO), "--dir", str(folder), "--port", str(port), "--no-wait"]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env=ENV)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes_in(folder: Path) -> list[str]:
    """Command lines of the processes that name ``folder`` (the issuer runs with ``--dir FOLDER``)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if str(folder) in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def _assert_nothing_left(folder: Path, port: int) -> None:
    assert not _listening(port), f"something still listens on {port}"
    assert _processes_in(folder) == []


def test_demo_runs_twice_and_leaves_nothing_running(tmp_path: Path) -> None:
    """The second run used to fail with 409 (the demo person enrolled already) and leave its issuer on the
    port: now it reuses the person and the phone, and every run stops its issuer."""
    folder, port = tmp_path / "demo", free_port()
    first = _run(folder, port)
    assert first.returncode == 0, first.stderr
    assert "demo person enrolled as subject" in first.stdout
    subject = first.stdout.split("demo person enrolled as subject ")[1].split()[0]
    _assert_nothing_left(folder, port)

    second = _run(folder, port)
    assert second.returncode == 0, second.stderr
    assert f"demo person already enrolled (an earlier run) as subject {subject}" in second.stdout
    assert f"issuer running at http://127.0.0.1:{port}" in second.stdout  # its port, free again
    assert second.stdout.count("verdict: ALLOW") == 2 and '"decision": "ALLOW"' in second.stdout
    assert "Traceback" not in second.stderr
    _assert_nothing_left(folder, port)


def _wait_for(fd: int, text: str, seconds: float) -> str:
    """What the process wrote to ``fd`` up to ``text``; fails after ``seconds`` even when it falls silent."""
    seen, end = b"", time.monotonic() + seconds
    while text.encode() not in seen:
        left = end - time.monotonic()
        assert left > 0, f"no {text!r} within {seconds} s: {seen.decode(errors='replace')[-2000:]}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"the demo ended before {text!r}: {seen.decode(errors='replace')[-2000:]}"
            seen += chunk
    return seen.decode(errors="replace")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_stopped_while_serving_stops_its_issuer(tmp_path: Path, sig: signal.Signals) -> None:
    """With a terminal attached the demo serves until Ctrl-C; Ctrl-C or a SIGTERM stops the issuer too."""
    folder, port = tmp_path / "demo", free_port()
    terminal, tty = pty.openpty()  # standard input is a terminal: the demo keeps serving
    cmd = [sys.executable, str(DEMO), "--dir", str(folder), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdin=tty, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    os.close(tty)
    try:
        assert proc.stdout is not None
        _wait_for(proc.stdout.fileno(), "press Ctrl-C", 90)  # printed once the issuer serves
        assert _listening(port)
        proc.send_signal(sig)  # to the demo alone: its own handler must stop the issuer
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(terminal)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "已停止" in err
    _assert_nothing_left(folder, port)
