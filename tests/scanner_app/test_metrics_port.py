"""``suishenma-scanner --metrics-port N``: the kiosk's verdicts, syncs, list ages and scan-log backlog on
``GET /metrics``, in the verifier's families (``verifier/ops_metrics.py``), while the kiosk runs."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scanner_app.cli import main
from scanner_app.metrics_server import KioskMetrics, MetricsPortError
from suishenma import Status
from testing.live_issuer import free_port
from verifier import Verifier

from ..verifier.sim import IssuerSim

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = re.compile(r"^(suishenma_verifier_\w+)(\{[^}]*\})? (\S+)$")


def _scrape(port: int) -> tuple[str, dict[str, float]]:
    """The content type and the samples of ``GET /metrics``, keyed ``name{labels}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        content_type, text = r.headers["Content-Type"], r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        samples[m[1] + (m[2] or "")] = float(m[3])
    for family in {key.split("{")[0] for key in samples}:
        assert f"# TYPE {family} " in text and f"# HELP {family} " in text
    return content_type, samples


def _read_verdicts(proc: subprocess.Popen[str], count: int, timeout: float = 60) -> list[dict[str, object]]:
    assert proc.stdout is not None
    verdicts: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout
    while len(verdicts) < count and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        verdicts.append(json.loads(line))
    return verdicts


def test_headless_kiosk_serves_its_verdicts_by_decision_and_reason(sim: IssuerSim, state: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "scanner_app", "--state", str(state), "--stdin", "--headless", "--no-sync"]
    proc = subprocess.Popen(
        [*cmd, "--metrics-port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdin is not None
        red = sim.code(Status.RED, subject=b"\x09" * 8)
        yellow = sim.code(Status.YELLOW, subject=b"\x07" * 8)
        for code in (sim.code(), red, yellow, sim.code(subject=b"\x05" * 8)):
            proc.stdin.write(code + "\n")
        proc.stdin.flush()
        verdicts = _read_verdicts(proc, 4)
        assert sorted((v["decision"], v["reason"]) for v in verdicts) == [
            ("ALLOW", "ok"),
            ("ALLOW", "ok"),
            ("DENY", "status_red"),
            ("DENY", "status_yellow"),
        ]

        content_type, samples = _scrape(port)  # while the kiosk runs
        assert content_type == "text/plain; version=0.0.4"
        assert samples['suishenma_verifier_verdicts_total{decision="ALLOW",reason="ok"}'] == 2
        assert samples['suishenma_verifier_verdicts_total{decision="DENY",reason="status_red"}'] == 1
        assert samples['suishenma_verifier_verdicts_total{decision="DENY",reason="status_yellow"}'] == 1
        assert samples["suishenma_verifier_scan_log_pending_records"] == 4  # no upload key: all still here
        assert 0 <= samples['suishenma_verifier_list_age_seconds{kind="trust",list="trust"}'] < 600
        assert samples['suishenma_verifier_list_max_age_seconds{kind="status",list="SH"}'] > 0
        assert samples["suishenma_verifier_stale"] == 0 and samples["suishenma_verifier_clock_wrong"] == 0
        assert samples['suishenma_verifier_sync_failures_total{reason="network"}'] == 0

        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert missing.value.code == 404

        proc.stdin.close()  # the reader unplugged: the kiosk ends, and frees the port
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_sync_failures_are_counted_by_reason(sim: IssuerSim, state: Path) -> None:
    """The issuer went away: the sync thread's failure shows as its typed reason, and the kiosk as offline."""
    verifier = Verifier.open(state)
    metrics = KioskMetrics.start(verifier, "127.0.0.1", 0)
    try:
        sim.close()
        report = metrics.metered.sync()
        assert not report.ok
        _, samples = _scrape(metrics.port)
        failures = {k: v for k, v in samples.items() if k.startswith("suishenma_verifier_sync_failures_total") and v}
        assert failures == {'suishenma_verifier_sync_failures_total{reason="no_issuer_answered"}': 1}, failures
        assert samples["suishenma_verifier_offline"] == 1
    finally:
        metrics.close()
        verifier.close()


def test_metrics_port_in_use_is_a_bilingual_usage_error(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--state", str(state), "--stdin", "--headless", "--no-sync", "--metrics-port", str(port)]) == 2
    zh, en = capsys.readouterr().err.strip().splitlines()[-2:]
    assert zh.startswith("错误：") and f"127.0.0.1:{port}" in zh and "--metrics-port" in zh
    assert en.startswith("error: ") and f"127.0.0.1:{port}" in en and "in use" in en


def test_metrics_port_out_of_range_is_refused(state: Path) -> None:
    verifier = Verifier.open(state)
    try:
        with pytest.raises(MetricsPortError) as exc:
            KioskMetrics.start(verifier, "127.0.0.1", 70000)
        assert "70000" in exc.value.zh and "70000" in exc.value.en
    finally:
        verifier.close()


def test_metrics_port_from_the_config_file(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A kiosk under systemd is configured by its TOML file: the port there is served like the flag."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "scanner.toml"
        config.write_text(f'metrics_port = {port}\nmetrics_host = "127.0.0.1"\n', "utf-8")
        assert main(["--state", str(state), "--stdin", "--headless", "--no-sync", "--config", str(config)]) == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err  # the file's port was the one tried
    config.write_text('metrics_port = "9464"\n', "utf-8")
    assert main(["--state", str(state), "--stdin", "--headless", "--no-sync", "--config", str(config)]) == 2
    zh, en = capsys.readouterr().err.strip().splitlines()[-2:]
    assert "metrics_port" in zh and en == "error: metrics_port must be a port number from 1 to 65535"
