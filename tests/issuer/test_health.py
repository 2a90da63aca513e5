"""An issuer that cannot sign never says it is healthy: ``serve`` refuses to start naming the cause, and
``/healthz`` turns 503 with the reason when signing becomes impossible while it runs."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from issuer import Settings, create_app
from issuer.cli import main
from suishenma import SigningKey
from testing.live_issuer import LiveIssuer

from .conftest import bearer, enrol

PASSPHRASE = "correct horse"


def _signing_key_file(base: Path) -> Path:
    (path,) = (base / "keys").glob("issuer-*.key")
    return path


@pytest.fixture()
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """``uvicorn.run`` replaced: a test that should refuse to start fails instead of serving forever."""
    import uvicorn

    calls: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    return calls


def _unreadable(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()  # reading a folder fails even for root, unlike chmod 000


def _damaged(path: Path) -> None:
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")


# (what happens to the folder, the environment's passphrase, the words that must name the cause)
CAUSES: dict[str, tuple[Callable[[Path], None], str | None, str, str]] = {
    "passphrase_missing": (
        lambda base: None,
        None,
        "is encrypted and SUISHENMA_KEY_PASSPHRASE is not set",
        "已加密，但未设置环境变量 SUISHENMA_KEY_PASSPHRASE",
    ),
    "passphrase_wrong": (
        lambda base: None,
        "battery staple",
        "the passphrase in SUISHENMA_KEY_PASSPHRASE does not open the signing key file",
        "环境变量 SUISHENMA_KEY_PASSPHRASE 中的口令打不开签名密钥文件",
    ),
    "key_file_missing": (
        lambda base: _signing_key_file(base).unlink(),
        PASSPHRASE,
        "is missing: restore it from your backup",
        "不存在：请从备份恢复该文件",
    ),
    "key_file_unreadable": (
        lambda base: _unreadable(_signing_key_file(base)),
        PASSPHRASE,
        "cannot read the signing key file",
        "无法读取签名密钥文件",
    ),
    "key_file_damaged": (
        lambda base: _damaged(_signing_key_file(base)),
        PASSPHRASE,
        "is not a private key this issuer can use",
        "不是本服务可用的私钥",
    ),
}


@pytest.mark.parametrize("cause", list(CAUSES))
def test_serve_refuses_to_start_when_it_could_not_sign_and_names_the_cause(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uvicorn_calls: list[object],
    cause: str,
) -> None:
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", PASSPHRASE)
    assert main(["--dir", str(tmp_path), "init"]) == 0
    key_file = _signing_key_file(tmp_path)
    damage, passphrase, en, zh = CAUSES[cause]
    damage(tmp_path)
    if passphrase is None:
        monkeypatch.delenv("SUISHENMA_KEY_PASSPHRASE")
    else:
        monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", passphrase)
    capsys.readouterr()

    assert main(["--dir", str(tmp_path), "serve", "--port", "1"]) == 1
    assert uvicorn_calls == []
    zh_line, en_line = capsys.readouterr().err.splitlines()
    assert en_line.startswith("error: ") and en in en_line and str(key_file) in en_line
    assert zh_line.startswith("错误：") and zh in zh_line and str(key_file) in zh_line


def test_serve_refuses_to_start_in_a_folder_never_initialised_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], uvicorn_calls: list[object]
) -> None:
    assert main(["--dir", str(tmp_path), "serve"]) == 1
    assert uvicorn_calls == [] and list(tmp_path.iterdir()) == []  # no empty database left behind
    zh_line, en_line = capsys.readouterr().err.splitlines()
    assert "has not been initialised" in en_line and "run `suishenma-issuer init` first" in en_line
    assert "尚未初始化" in zh_line and "请先运行 `suishenma-issuer init`" in zh_line


def test_serve_refuses_to_start_when_the_root_key_kept_here_does_not_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], uvicorn_calls: list[object]
) -> None:
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", PASSPHRASE)
    assert main(["--dir", str(tmp_path), "init"]) == 0
    (tmp_path / "keys" / "root.key").write_bytes(SigningKey.generate().pem(b"another passphrase"))
    capsys.readouterr()
    assert main(["--dir", str(tmp_path), "serve"]) == 1
    assert uvicorn_calls == []
    assert "does not open the root key file" in capsys.readouterr().err


def test_serve_starts_when_it_can_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uvicorn_calls: list[object]
) -> None:
    """The control for the refusals above: the same folder with the right passphrase starts."""
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", PASSPHRASE)
    assert main(["--dir", str(tmp_path), "init"]) == 0
    assert main(["--dir", str(tmp_path), "serve"]) == 0
    assert len(uvicorn_calls) == 1


@pytest.fixture()
def bare_client(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_healthz_turns_unhealthy_with_the_reason_when_the_key_file_goes_and_recovers(
    bare_client: TestClient, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = _signing_key_file(home)
    assert bare_client.get("/healthz").json() == {"ok": True}
    kept = key_file.read_bytes()

    key_file.unlink()
    r = bare_client.get("/healthz")
    body = r.json()
    assert r.status_code == 503 and body["ok"] is False and body["reason"] == "key_file_missing"
    assert key_file.name in body["message_en"] and key_file.name in body["message_zh"]
    assert str(home) not in r.text  # the public answer names the file, not where the keys live
    assert any("cannot sign" in m and str(key_file) in m for m in caplog.messages)

    _unreadable(key_file)
    assert bare_client.get("/healthz").json()["reason"] == "key_file_unreadable"
    key_file.rmdir()
    _damaged(key_file)
    assert bare_client.get("/healthz").json()["reason"] == "key_file_damaged"

    key_file.write_bytes(kept)
    assert bare_client.get("/healthz").status_code == 200


def test_mint_that_cannot_open_the_key_gives_the_reason_and_logs_the_passphrase_variable(
    home: Path, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An app started without the start-up check (create_app directly) still says why, not just the type."""
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", "set for a key that is not encrypted")
    with TestClient(create_app(Settings(base_dir=home)), raise_server_exceptions=False) as client:
        subject = enrol(client, keys["enrol"])
        r = client.post(f"/v1/subjects/{subject}/codes", json={}, headers=bearer(keys["mint"]))
        assert r.status_code == 503 and r.json()["detail"] == {"reason": "key_not_encrypted"}
        assert str(home) not in r.text
        h = client.get("/healthz")
        assert h.status_code == 503 and h.json()["reason"] == "key_not_encrypted"
    logged = [m for m in caplog.messages if "cannot sign" in m]
    assert logged and all("SUISHENMA_KEY_PASSPHRASE" in m for m in logged)


def test_live_issuer_reports_unhealthy_when_its_key_file_is_removed(home: Path) -> None:
    with LiveIssuer(home) as server:
        key_file = _signing_key_file(home)
        moved = shutil.move(key_file, home / "elsewhere.key")
        r = httpx.get(server.url + "/healthz")
        assert r.status_code == 503 and r.json()["reason"] == "key_file_missing"
        shutil.move(moved, key_file)
        assert httpx.get(server.url + "/healthz").json() == {"ok": True}
    log = server.log.read_text()
    assert f"cannot sign: the signing key file {key_file} is missing" in log


def test_healthz_logs_a_lasting_problem_once(
    bare_client: TestClient, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _signing_key_file(home).unlink()
    caplog.set_level(logging.INFO, logger="issuer.signing_health")
    for _ in range(3):
        assert bare_client.get("/healthz").status_code == 503
    assert sum("cannot sign" in m for m in caplog.messages) == 1
