"""The `suishenma` CLI, in-process: every subcommand and its exit codes."""

from __future__ import annotations

import io
import json
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from suishenma._clock import format_instant
from suishenma.cli import main
from suishenma.keys import PASSPHRASE_ENV
from tests.conftest import NOW

AT = format_instant(NOW)
LATER = format_instant(NOW + 30)


@pytest.fixture()
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["keys", "generate", "--out", str(tmp_path / "issuer")]) == 0
    assert main(["keys", "generate", "--out", str(tmp_path / "root"), "--alg", "ES256"]) == 0
    capsys.readouterr()
    return tmp_path


def _mint(keys: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    args = ["mint", "--key", str(keys / "issuer.key"), "--subject", "00112233", "--status", "green", "--at", AT]
    assert main([*args, *extra]) == 0
    out = capsys.readouterr().out.strip()
    assert "\n" not in out  # the code text alone
    return out


def test_keys_generate_writes_private_key_0600_and_prints_kid(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stat.S_IMODE((keys / "issuer.key").stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in (keys / "issuer.pub").read_bytes()
    assert main(["keys", "generate", "--out", str(keys / "x")]) == 0
    assert len(capsys.readouterr().out.strip()) == 8  # 4-byte kid in hex


def test_keys_generate_refuses_to_overwrite(keys: Path) -> None:
    before = (keys / "issuer.key").read_bytes()
    assert main(["keys", "generate", "--out", str(keys / "issuer")]) == 2
    assert (keys / "issuer.key").read_bytes() == before


def test_encrypted_key_needs_the_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 0
    assert b"ENCRYPTED" in (tmp_path / "k.key").read_bytes()
    args = ["mint", "--key", str(tmp_path / "k.key"), "--subject", "01", "--status", "red"]
    assert main(args) == 0
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    assert main(args) == 2
    monkeypatch.delenv(PASSPHRASE_ENV)
    capsys.readouterr()
    assert main(args) == 2
    assert PASSPHRASE_ENV in capsys.readouterr().err


def test_mint_and_verify_exit_codes(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _mint(keys, capsys, "--name", "张小三", "--id-number", "310101199001011234")
    assert main(["verify", code, "--key", str(keys / "issuer.pub"), "--at", LATER, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] and out["masked_name"] == "张*三" and out["status"] == "green"
    assert main(["verify", code, "--key", str(keys / "root.pub"), "--at", LATER]) == 1
    assert "unknown_kid" in capsys.readouterr().out
    assert main(["verify", code, "--key", str(keys / "issuer.pub"), "--at", format_instant(NOW + 3600)]) == 1
    assert "expired" in capsys.readouterr().out
    assert main(["verify", code]) == 2
    assert main(["verify", code, "--trust-list", str(keys / "none")]) == 2
    assert main(["verify"]) == 2
    assert main(["frobnicate"]) == 2


def test_mint_offline_needs_index(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["mint", "--key", str(keys / "issuer.key"), "--subject", "01", "--status", "green", "--type", "offline"]
    assert main(args) == 2
    code = _mint(keys, capsys, "--type", "offline", "--status-index", "42")
    assert main(["verify", code, "--key", str(keys / "issuer.pub"), "--at", format_instant(NOW + 86400), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status_index"] == 42
    assert main(["mint", "--key", str(keys / "issuer.key"), "--subject", "zz", "--status", "green"]) == 2


def test_trust_list_sign_show_and_verify_through_it(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tl = keys / "trust.cwt"
    sign = ["trust-list", "sign", "--root-key", str(keys / "root.key"), "--entry", f"SH={keys / 'issuer.pub'}"]
    assert main([*sign, "--version", "2", "--at", AT, "--out", str(tl)]) == 0
    assert main(["trust-list", "show", str(tl), "--root", str(keys / "root.pub"), "--at", AT]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert shown["version"] == 2 and shown["issuers"][0]["issuer"] == "SH"
    code = _mint(keys, capsys)
    assert main(["verify", code, "--trust-list", str(tl), "--root", str(keys / "root.pub"), "--at", LATER]) == 0
    assert main(["trust-list", "show", str(tl), "--root", str(keys / "issuer.pub"), "--at", AT]) == 2


def test_status_list_build_and_show(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = keys / "status.cwt"
    revoked = keys / "revoked.txt"
    revoked.write_text("3\n9\n")
    build = ["status-list", "build", "--key", str(keys / "issuer.key"), "--size", "100", "--bits", "2"]
    assert (
        main(
            [
                *build,
                "--revoke",
                str(revoked),
                "--suspend",
                "4",
                "--uri",
                "/s",
                "--version",
                "7",
                "--out",
                str(out),
                "--at",
                AT,
            ]
        )
        == 0
    )
    capsys.readouterr()
    for index, status in ((3, "invalid"), (4, "suspended"), (5, "valid")):
        assert (
            main(
                ["status-list", "show", str(out), "--key", str(keys / "issuer.pub"), "--index", str(index), "--at", AT]
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out)["status"] == status
    assert main([*build, "--revoke", "100", "--uri", "/s", "--version", "1", "--out", str(out)]) == 2


def test_qr_png_and_svg(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _mint(keys, capsys)
    assert main(["qr", code, "--out", str(keys / "c.png")]) == 0
    assert (keys / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["qr", code, "--out", str(keys / "c.svg"), "--ecc", "L"]) == 0
    assert b"<svg" in (keys / "c.svg").read_bytes()
    assert main(["qr", code, "--out", str(keys / "c.gif")]) == 2
    try:
        import numpy as np
        import zxingcpp
        from PIL import Image
    except ImportError:
        return
    found = zxingcpp.read_barcodes(np.asarray(Image.open(keys / "c.png").convert("L")))
    assert [r.text for r in found] == [code]


def test_inspect_says_not_verified(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _mint(keys, capsys)
    assert main(["inspect", code]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is False and "NOT VERIFIED" in out["warning"]
    assert main(["inspect", "SM1:???"]) == 1  # undecodable, as verify says of an invalid code
    assert "bad_encoding" in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "mint" in capsys.readouterr().out


def test_version_and_usage_without_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("suishenma ")
    assert main([]) == 2
    assert "usage: suishenma" in capsys.readouterr().err


def test_code_from_stdin_or_file_survives_shell_characters(
    keys: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Codes hold $ % * and spaces: a shell mangles them unquoted, so '-' and --file take them whole."""
    code = _mint(keys, capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO(code + "\n"))
    assert main(["verify", "-", "--key", str(keys / "issuer.pub"), "--at", LATER]) == 0
    (keys / "code.txt").write_text(code + "\n")
    assert main(["inspect", "--file", str(keys / "code.txt")]) == 0
    capsys.readouterr()
    assert main(["verify", code, "--file", str(keys / "code.txt"), "--key", str(keys / "issuer.pub")]) == 2
    assert "one of them" in capsys.readouterr().err


def test_output_into_a_pipe_closed_early_is_no_error(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _mint(keys, capsys)
    cmd = [sys.executable, "-m", "suishenma", "inspect", code]
    head = subprocess.run(f"{shlex.join(cmd)} | head -c 1", shell=True, capture_output=True, text=True, check=False)
    assert head.stdout == "{" and "BrokenPipeError" not in head.stderr and "Traceback" not in head.stderr


def test_errors_carry_the_same_detail_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "SM1:AB", "--key", "/nonexistent.pub"]) == 2
    err = capsys.readouterr().err
    en, zh = err.splitlines()[:2]
    assert "/nonexistent.pub" in en and "/nonexistent.pub" in zh
