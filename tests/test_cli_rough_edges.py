"""What a new operator meets first on every command line: a closed pipe ends quietly with exit 141, a
missing output folder is a clear error rather than a traceback, and every message is Chinese first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from issuer.cli import main as issuer_main
from scanner_app.cli import main as scanner_main
from suishenma import Status
from suishenma.cli import main as suishenma_main
from suishenma.cliutil import EXIT_PIPE
from verifier.cli import main as verifier_main

from .verifier.sim import IssuerSim

ROOT = Path(__file__).resolve().parent.parent


def _into_closed_pipe(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``python -m ARGS`` with standard output on a pipe whose reader has already gone (``| head``
    that stopped reading): every write fails, as it would at any point of a longer output."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", *args],
            input=stdin,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)


def _assert_quiet_141(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == EXIT_PIPE, proc.stderr
    for noise in ("Traceback", "BrokenPipeError", "Broken pipe", "error:"):
        assert noise not in proc.stderr, proc.stderr


def _message_lines(err: str) -> list[str]:
    """Standard error without argparse's usage block (``usage: ...`` and its indented continuation)."""
    lines = err.strip().splitlines()
    while lines and (lines[0].startswith("usage:") or lines[0].startswith(" ")):
        lines.pop(0)
    return lines


def _assert_chinese_first(err: str, *details: str) -> None:
    """An error is one Chinese line, then the same in English, with the same details in both."""
    lines = _message_lines(err)
    assert len(lines) >= 2, err
    zh, en = lines[0], lines[1]
    assert zh.startswith("错误："), err
    assert en.startswith("error: "), err
    for detail in details:
        assert detail in zh and detail in en, (detail, err)


@pytest.fixture()
def sim(wall_sim: IssuerSim) -> IssuerSim:
    """The commands read this machine's clock: the issuer stands at that instant."""
    return wall_sim


@pytest.fixture()
def state(sim: IssuerSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A venue verifier synced from the simulator, with three scan records to export."""
    root = tmp_path / "root.pub"
    root.write_bytes(sim.root.public().pem())
    path = tmp_path / "state"
    init = ["init", "--issuer", sim.url, "--root", str(root), "--scenario", "venue", "--state", str(path)]
    assert verifier_main(init) == 0
    assert verifier_main(["sync", "--state", str(path)]) == 0
    for status in (Status.GREEN, Status.YELLOW, Status.GREEN):
        verifier_main(["verify", "--state", str(path), sim.code(status)])
    capsys.readouterr()
    return path


# --- a reader that stops early: exit 141, nothing on standard error ---------------------------------------


def test_verifier_log_export_into_a_closed_pipe_exits_141_quietly(state: Path) -> None:
    """``suishenma-verifier log export | head -1`` used to print "Broken pipe" and exit 2."""
    _assert_quiet_141(_into_closed_pipe(["verifier", "log", "export", "--state", str(state)]))


def test_suishenma_into_a_closed_pipe_exits_141_quietly(sim: IssuerSim) -> None:
    _assert_quiet_141(_into_closed_pipe(["suishenma", "inspect", sim.code()]))


def test_issuer_into_a_closed_pipe_exits_141_quietly(tmp_path: Path) -> None:
    _assert_quiet_141(_into_closed_pipe(["issuer", "--dir", str(tmp_path), "init"]))


def test_headless_kiosk_into_a_closed_pipe_exits_141_quietly(sim: IssuerSim, state: Path) -> None:
    """The gate's reader of verdict lines went away: the kiosk ends, rather than deciding on unheard."""
    proc = _into_closed_pipe(
        ["scanner_app", "--state", str(state), "--stdin", "--headless", "--no-sync"], stdin=sim.code() + "\n"
    )
    _assert_quiet_141(proc)


def test_a_pipe_that_reads_everything_still_exits_0(state: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "verifier", "log", "export", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3 and proc.stderr == ""


# --- suishenma qr --out into a folder that does not exist -------------------------------------------------


def test_qr_into_a_missing_folder_names_it_in_both_languages(
    sim: IssuerSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "missing" / "dir"
    assert suishenma_main(["qr", sim.code(), "--out", str(folder / "x.png")]) == 2
    _assert_chinese_first(capsys.readouterr().err, str(folder))
    assert not (tmp_path / "missing").exists()  # nothing made on the way


def test_qr_that_cannot_be_written_leaves_no_partial_file(
    sim: IssuerSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The image is written beside its place and renamed: a failure leaves the folder as it was."""
    target = tmp_path / "taken.png"
    target.mkdir()  # a folder where the file should go: the rename fails after the image was written
    assert suishenma_main(["qr", sim.code(), "--out", str(target)]) == 2
    _assert_chinese_first(capsys.readouterr().err, str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"] and target.is_dir()
    assert suishenma_main(["qr", sim.code(), "--out", str(tmp_path / "ok.png")]) == 0
    assert (tmp_path / "ok.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png", "taken.png"]


# --- Chinese first, then English, in every command line ---------------------------------------------------


def test_suishenma_errors_are_chinese_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nonexistent.pub")
    assert suishenma_main(["verify", "SM1:AB", "--key", missing]) == 2
    _assert_chinese_first(capsys.readouterr().err, missing)
    assert suishenma_main(["mint", "--key", "k"]) == 2  # argparse's own message, translated
    _assert_chinese_first(capsys.readouterr().err, "--subject")
    assert suishenma_main(["inspect", "SM1:???"]) == 1
    _assert_chinese_first(capsys.readouterr().err, "bad_encoding")


def test_suishenma_notes_and_invalid_verdicts_are_chinese_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert suishenma_main(["keys", "generate", "--out", str(tmp_path / "k")]) == 0
    assert capsys.readouterr().err.startswith("已写入 ")
    assert suishenma_main(["verify", "SM1:AB", "--key", str(tmp_path / "k.pub")]) == 1
    out = capsys.readouterr().out  # INVALID: <reason>: <Chinese> / <English>
    assert out.startswith("INVALID: "), out
    message = out.split(": ", 2)[2]
    assert "\u4e00" <= message[0] <= "\u9fff" and " / " in message, out


def test_verifier_errors_are_chinese_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = str(tmp_path / "nowhere")
    assert verifier_main(["status", "--state", nowhere]) == 2
    _assert_chinese_first(capsys.readouterr().err)
    with pytest.raises(SystemExit) as exc:
        verifier_main(["status"])
    assert exc.value.code == 2
    _assert_chinese_first(capsys.readouterr().err, "--state")


def test_verifier_serve_refusal_is_chinese_first(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verifier_main(["serve", "--state", str(state), "--host", "0.0.0.0"]) == 2
    _assert_chinese_first(capsys.readouterr().err, "0.0.0.0", "--token-file")


def test_issuer_errors_are_chinese_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert issuer_main(["--dir", str(tmp_path), "api-key", "list"]) != 0
    _assert_chinese_first(capsys.readouterr().err)
    assert issuer_main(["--dir", str(tmp_path), "serve", "--port", "x"]) == 2
    _assert_chinese_first(capsys.readouterr().err, "--port")


def test_scanner_errors_are_chinese_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert scanner_main(["--headless", "--stdin"]) == 2  # no --state
    _assert_chinese_first(capsys.readouterr().err, "--state")
    assert scanner_main(["--state", str(tmp_path / "nowhere"), "--headless", "--stdin"]) == 2
    _assert_chinese_first(capsys.readouterr().err)
