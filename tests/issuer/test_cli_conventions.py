"""``suishenma-issuer`` behaves like the command-line tools operators already know: --version, usage
when run bare, quiet under ``| head``, --json for scripts, --dir anywhere, errors in Chinese and English
with the same detail, settings errors in one line each, and one log format while serving."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from issuer.cli import main
from issuer.cli.log_format import LINE_PATTERN
from issuer.cli.support import EXIT_PIPE
from issuer.settings import Settings, load_settings
from suishenma import __version__
from testing.live_issuer import LiveIssuer


@pytest.fixture()
def backend() -> str:
    """These tests are not about storage: the embedded default only."""
    return "sqlite"


EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "issuer.example.toml"


def _two_lines(err: str) -> tuple[str, str]:
    """An error is exactly one Chinese line then one English line."""
    lines = err.strip().splitlines()
    assert len(lines) == 2, lines
    zh, en = lines
    assert zh.startswith("错误：") and en.startswith("error: "), lines
    return zh, en


def _details(en: str) -> list[str]:
    """What a reader acts on: quoted names, paths, numbers and ids."""
    return re.findall(r"'[^']*'|/[\w./-]+|\b[0-9a-f]{16}\b|\b\d+\b", en.removeprefix("error: "))


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"suishenma-issuer {__version__}"


def test_no_arguments_shows_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: suishenma-issuer")
    for command in ("init", "serve", "api-key", "keys", "trust-list", "audit", "offline-codes"):
        assert command in err


def test_output_into_a_pipe_closed_early_ends_quietly(home: Path, keys: dict[str, str]) -> None:
    """``suishenma-issuer api-key list | head -0``: the reader is gone before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    cmd = [sys.executable, "-m", "issuer", "--dir", str(home), "api-key", "list"]
    proc = subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write_end)
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == EXIT_PIPE


def test_api_key_list_json_is_for_scripts_and_holds_no_keys(
    home: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dir", str(home), "api-key", "revoke", "--name", "kiosk"]) == 0
    capsys.readouterr()
    assert main(["api-key", "list", "--json", "--dir", str(home)]) == 0
    out = capsys.readouterr().out
    listed = {k["name"]: k for k in json.loads(out)}
    assert set(listed) == set(keys)
    assert listed["kiosk"]["state"] == "revoked" and listed["mint"] == {
        "name": "mint",
        "state": "active",
        "scopes": ["mint"],
        "rate_per_s": 1000.0,
    }
    assert not any(key in out for key in keys.values())


def test_json_output_of_the_commands_a_script_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--dir", str(tmp_path), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["issuer_id"] == "SH" and made["trust_list_version"] == 1 and Path(made["key_file"]).is_file()

    assert main(["api-key", "create", "--name", "gate-1", "--scopes", "kiosk", "--json", "--dir", str(tmp_path)]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["name"] == "gate-1" and created["scopes"] == ["kiosk"] and created["key"].startswith("ssk_")

    assert main(["keys", "rotate", "--json", "--dir", str(tmp_path)]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["retired"] == made["kid"] and rotated["kid"] != made["kid"] and rotated["trust_list_version"] == 2

    assert main(["audit", "verify", "--json", "--dir", str(tmp_path)]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert audit["ok"] is True and audit["problems"] == [] and audit["rows"] > 0

    assert main(["trust-list", "sign", "--json", "--dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 3


def test_dir_is_accepted_after_the_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "var" / "issuer.db").is_file()
    capsys.readouterr()
    assert main(["audit", "verify", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_a_command_in_a_folder_never_initialised_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dir", str(tmp_path), "api-key", "list"]) == 1
    assert list(tmp_path.iterdir()) == []  # a mistyped --dir leaves no empty database behind
    zh, en = _two_lines(capsys.readouterr().err)
    assert "run `suishenma-issuer init` first" in en and "请先运行 `suishenma-issuer init`" in zh


def test_usage_errors_are_in_both_languages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api-key", "crate"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    zh, en = _two_lines("\n".join(lines[-2:]))
    assert "invalid choice: 'crate'" in en and "'crate'" in zh and "无效" in zh


@pytest.mark.parametrize(
    "argv",
    [
        ["api-key", "revoke", "--name", "nobody"],
        ["api-key", "create", "--name", "mint", "--scopes", "mint"],
        ["api-key", "create", "--name", "x", "--scopes", "mint,fly"],
        ["api-key", "create", "--name", "x", "--scopes", "mint", "--rate", "-1"],
        ["api-key", "create", "--name", "not a kiosk", "--scopes", "kiosk"],
        ["offline-codes", "--subjects", "{subjects}", "--out", "{out}"],
        ["trust-list", "import", "{missing}"],
        ["trust-list", "request", "--out", "{subjects}/request.json"],
    ],
    ids=[
        "unknown-key",
        "key-exists",
        "bad-scope",
        "bad-rate",
        "kiosk-name",
        "bad-subject-file",
        "missing-file",
        "unwritable-out",
    ],
)
def test_command_errors_carry_the_same_detail_in_chinese_and_english(
    home: Path, keys: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    subjects = tmp_path / "subjects.txt"
    subjects.write_text("0123456789abcdef\nnot-a-subject\n")
    paths = {"subjects": str(subjects), "out": str(tmp_path / "out"), "missing": str(tmp_path / "nothing.cwt")}
    capsys.readouterr()
    assert main(["--dir", str(home), *(a.format(**paths) for a in argv)]) in (1, 2)
    zh, en = _two_lines(capsys.readouterr().err)
    assert not re.search(r"[\u4e00-\u9fff]", en)
    assert re.search(r"[\u4e00-\u9fff]", zh.removeprefix("错误：")), zh
    for detail in _details(en):
        assert detail in zh, f"{detail!r} is in the English line but not the Chinese: {zh}"


def test_toml_syntax_error_is_one_line_in_each_language(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "issuer.toml"
    cfg.write_text('issuer_id = "SH"\ndynamic_ttl = = 60\n')
    assert main(["--config", str(cfg), "--dir", str(tmp_path), "init"]) == 2
    zh, en = _two_lines(capsys.readouterr().err)
    assert f"settings file {cfg} is not valid TOML" in en and "line 2, column" in en
    assert f"设置文件 {cfg} 第 2 行" in zh and "不是有效的 TOML" in zh
    assert not (tmp_path / "var").exists()


def test_unknown_setting_in_toml_is_answered_with_the_nearest_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "issuer.toml"
    cfg.write_text("status_list_tll = 90\n")
    assert main(["--config", str(cfg), "--dir", str(tmp_path), "init"]) == 2
    zh, en = _two_lines(capsys.readouterr().err)
    assert en == f"error: status_list_tll in settings file {cfg} is not a setting; did you mean status_list_ttl?"
    assert "status_list_tll" in zh and "您是否想写 status_list_ttl？" in zh


def test_unknown_setting_in_the_environment_is_answered_with_the_nearest_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUISHENMA_ISSUER_DEMO_WALET", "1")
    assert main(["--dir", str(tmp_path), "init"]) == 2
    zh, en = _two_lines(capsys.readouterr().err)
    assert "SUISHENMA_ISSUER_DEMO_WALET is not a setting; did you mean SUISHENMA_ISSUER_DEMO_WALLET?" in en
    assert "SUISHENMA_ISSUER_DEMO_WALLET" in zh


@pytest.mark.parametrize("source", ["file", "environment"])
def test_invalid_value_names_where_it_came_from_without_pydantic_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    cfg = tmp_path / "issuer.toml"
    cfg.write_text("status_list_ttl = 5\n" if source == "file" else "")
    if source == "environment":
        monkeypatch.setenv("SUISHENMA_ISSUER_STATUS_LIST_TTL", "5")
    assert main(["--config", str(cfg), "--dir", str(tmp_path), "init"]) == 2
    err = capsys.readouterr().err
    zh, en = _two_lines(err)
    if source == "file":
        assert f"status_list_ttl = 5 in settings file {cfg} is invalid" in en
        assert f"{cfg} 中的 status_list_ttl = 5" in zh
    else:
        assert "environment variable SUISHENMA_ISSUER_STATUS_LIST_TTL=5 is invalid" in en
        assert "环境变量 SUISHENMA_ISSUER_STATUS_LIST_TTL=5" in zh
    assert "greater than or equal to 10" in en and "应不小于 10" in zh
    assert "validation error" not in err and "pydantic" not in err


def test_example_config_in_docs_loads_and_documents_every_option() -> None:
    text = EXAMPLE.read_text()
    lines = text.splitlines()
    table = tomllib.loads(text)
    assert set(table) == set(Settings.model_fields), "the example and Settings differ"
    for name in Settings.model_fields:
        (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{name} =")]
        assert lines[at - 1].startswith("# "), f"{name} has no comment above it in {EXAMPLE.name}"
    loaded = load_settings(EXAMPLE)
    assert loaded.model_dump() == Settings().model_dump(), "the example should show every default"


def test_serve_writes_one_log_format_uvicorn_and_access_lines_included(home: Path) -> None:
    with LiveIssuer(home, args=("--access-log",)) as server:
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/no-such-page").status_code == 404
    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    odd = [line for line in lines if not re.match(LINE_PATTERN, line)]
    assert not odd, odd
    names = {line.split(" ")[3] for line in lines}  # date, time, level, then the logger's name
    assert {"uvicorn.error:", "uvicorn.access:"} <= names, names
    assert any("GET /no-such-page" in line and " 404" in line for line in lines)
