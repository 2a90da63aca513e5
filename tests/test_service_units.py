"""The systemd units in docs/ (issuer, local verifier service, kiosk): each passes ``systemd-analyze verify``
with its programs where this checkout installs them, is sandboxed, and rates OK in systemd's own exposure
check (``systemd-analyze security``, below 4 of 10)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ("suishenma-issuer", "suishenma-verifier", "suishenma-scanner")
SANDBOX = (
    "NoNewPrivileges=true",
    "ProtectSystem=strict",
    "ProtectHome=true",
    "PrivateTmp=true",
    "CapabilityBoundingSet=",
)


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package brings it)")
    return tool


def _here(unit: str, tmp_path: Path) -> Path:
    """The unit with /opt/suishenma/.venv/bin/ replaced by this checkout's programs, which verify checks exist."""
    text = (ROOT / "docs" / f"{unit}.service").read_text("utf-8")
    path = tmp_path / f"{unit}.service"
    path.write_text(text.replace("/opt/suishenma/.venv/bin/", str(Path(sys.executable).parent) + "/"), "utf-8")
    return path


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [_analyze(), "verify", "--man=no", str(_here(unit, tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_sandboxed(unit: str, tmp_path: Path) -> None:
    text = (ROOT / "docs" / f"{unit}.service").read_text("utf-8")
    assert all(re.search(rf"^{re.escape(d)}$", text, re.M) for d in SANDBOX), unit
    run = subprocess.run(
        [_analyze(), "security", "--offline=true", str(_here(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d)", run.stdout)
    assert level is not None, run.stdout[-500:] + run.stderr
    assert float(level.group(1)) < 4.0, f"{unit}: exposure {level.group(1)}"


def test_the_issuer_unit_runs_workers_and_the_verifier_unit_stays_on_loopback() -> None:
    issuer = (ROOT / "docs" / "suishenma-issuer.service").read_text("utf-8")
    verifier = (ROOT / "docs" / "suishenma-verifier.service").read_text("utf-8")
    assert re.search(r"^ExecStart=.* serve .*--workers \d+", issuer, re.M)
    assert re.search(r"^ExecStart=.*suishenma-verifier serve .*--host 127\.0\.0\.1", verifier, re.M)
