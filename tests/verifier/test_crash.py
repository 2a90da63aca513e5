"""kill -9 during sync and during a burst of scan logging, 50 times each, in child processes.

After every kill the state reopens, each list is wholly the old or the new version, and every scan
record the API had returned for is on disk.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from verifier import Decision, Verifier

from .conftest import MakeVerifier, quick_fetcher
from .sim import IssuerSim

CHILD = [sys.executable, "-m", "tests.verifier.crash_child"]
ROOT = Path(__file__).resolve().parents[2]
RUNS = 50


def _spawn(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*CHILD, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_during_sync_leaves_old_or_new_lists(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("venue")
    state = v.state_dir
    v.close()
    rng = random.Random(7)
    for run in range(RUNS):
        old = run + 1
        sim.publish_trust(old + 1)
        sim.publish_status("SH", old + 1, revoked=range(0, 4096, 3), size=1 << 16)
        proc = _spawn("sync", str(state), str(sim.now))
        time.sleep(rng.uniform(0, 0.03))
        _kill(proc)
        reopened = Verifier.open(state, fetcher=quick_fetcher(sim), now=sim.now)
        try:
            assert reopened.load_problems == [], reopened.load_problems
            h = reopened.health(now=sim.now)
            assert h.trust_list_version in (old, old + 1)
            assert h.status_lists["SH"].version in (old, old + 1)
            assert reopened.verify(sim.code(), now=sim.now).decision is Decision.ALLOW
            report = reopened.sync(now=sim.now)  # catch up, so the next run starts from a known version
            assert report.ok and report.trust_list_version == old + 1
        finally:
            reopened.close()


def test_kill_9_during_scan_burst_loses_no_acknowledged_record(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("venue")
    state = v.state_dir
    v.close()
    rng = random.Random(11)
    code = sim.code()
    total = 0
    for _ in range(RUNS):
        proc = _spawn("scan", str(state), str(sim.now), code)
        assert proc.stdout is not None
        acknowledged = 0
        deadline = time.monotonic() + rng.uniform(0.005, 0.05)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip().isdigit():
                acknowledged = int(line)
        _kill(proc)
        # lines already written to the pipe but not read count as acknowledged too
        for line in proc.stdout:
            if line.strip().isdigit():
                acknowledged = int(line)
        total += acknowledged
        reopened = Verifier.open(state, now=sim.now)
        try:
            held = sum(1 for _ in reopened.store.scans())
            assert held >= total, (held, total)
            total = held  # records written but not yet acknowledged also count from here on
        finally:
            reopened.close()
    assert total > RUNS
