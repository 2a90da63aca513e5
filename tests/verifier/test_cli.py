"""``suishenma-verifier`` in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from suishenma import Status
from verifier.cli import main

from .sim import IssuerSim


@pytest.fixture()
def sim(wall_sim: IssuerSim) -> IssuerSim:
    """The command line reads this machine's clock: its issuer stands at that instant."""
    return wall_sim


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


def test_conventions_version_usage_stdin_json_iso_times(
    sim: IssuerSim, root_pub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("suishenma-verifier ")
    assert main([]) == 2 and "usage: suishenma-verifier" in capsys.readouterr().err
    state = str(tmp_path / "st")
    assert main(["init", "--issuer", sim.url, "--root", str(root_pub), "--scenario", "venue", "--state", state]) == 0
    capsys.readouterr()
    assert main(["sync", "--state", state, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lists_ok"] is True
    monkeypatch.setattr("sys.stdin", io.StringIO(sim.code() + "\n"))
    assert main(["verify", "--state", state, "-"]) == 0
    (tmp_path / "code.txt").write_text(sim.code())
    assert main(["verify", "--state", state, "--file", str(tmp_path / "code.txt")]) == 0
    capsys.readouterr()
    assert main(["log", "export", "--state", state]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["at"].endswith("Z") and first["at"][:4].isdigit() and "T" in first["at"]


@pytest.mark.parametrize(
    ("issuer", "scenario", "problem"),
    [
        ("issuer.example", "venue", "must start with https://"),  # no scheme: refused now, not at the first sync
        ("https://", "venue", "must start with https://"),
        ("http://127.0.0.1:1", "venu", "unknown scenario 'venu' (did you mean 'venue'?)"),  # not read as a file
    ],
)
def test_init_refuses_what_would_fail_later(
    root_pub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], issuer: str, scenario: str, problem: str
) -> None:
    state = tmp_path / "st"
    assert (
        main(["init", "--issuer", issuer, "--root", str(root_pub), "--scenario", scenario, "--state", str(state)]) == 2
    )
    err = capsys.readouterr().err
    assert problem in err and "错误：" in err
    assert not (state / "verifier.db").exists()  # nothing written
