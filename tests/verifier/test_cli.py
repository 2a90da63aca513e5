"""``suishenma-verifier`` in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suishenma import Status
from verifier.cli import main

from .sim import IssuerSim


@pytest.fixture()
def root_pub(sim: IssuerSim, tmp_path: Path) -> Path:
    path = tmp_path / "root.pub"
    path.write_bytes(sim.root.public().pem())
    return path


def test_init_sync_verify_status_export(
    sim: IssuerSim, root_pub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path / "st")
    args = ["init", "--issuer", sim.url, "--root", str(root_pub), "--scenario", "hospital", "--state", state]
    assert main([*args, "--kiosk-id", "desk-3"]) == 0
    assert main(args) == 2  # already initialised
    assert main(["sync", "--state", state]) == 0
    capsys.readouterr()
    assert main(["verify", "--state", state, sim.code(identity=True), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["decision"] == "ALLOW" and verdict["display"]["masked_name"] == "张*三"
    assert main(["verify", "--state", state, sim.code(Status.RED, identity=True)]) == 3
    assert "REFER status_red" in capsys.readouterr().out
    assert main(["status", "--state", state]) == 0
    out = capsys.readouterr().out
    assert "trust list version 1" in out and "2 scans today" in out
    assert main(["log", "export", "--state", state, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("seq,at,kiosk_id") and len(lines) == 3 and ",desk-3," in lines[1]


def test_venue_deny_exits_1_and_bad_usage_exits_2(
    sim: IssuerSim, root_pub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path / "st")
    assert main(["init", "--issuer", sim.url, "--root", str(root_pub), "--scenario", "venue", "--state", state]) == 0
    main(["sync", "--state", state])
    assert main(["verify", "--state", state, sim.code(Status.YELLOW)]) == 1
    assert main(["verify", "--state", str(tmp_path / "nowhere"), "x"]) == 2
    assert "run init first" in capsys.readouterr().err
    bad = [
        "init",
        "--issuer",
        sim.url,
        "--root",
        str(root_pub),
        "--scenario",
        "airport",
        "--state",
        str(tmp_path / "b"),
    ]
    assert main(bad) == 2
