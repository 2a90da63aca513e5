"""The local verifier service's edges: a body that is not JSON, /docs with no network, and what
``suishenma-verifier serve`` says and returns when it starts, stops, or cannot listen."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from testing.live_issuer import free_port
from verifier.local_service import create_app

from .conftest import MakeVerifier
from .sim import IssuerSim

JSON_TYPE = {"content-type": "application/json"}


def _chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture()
def client(sim: IssuerSim, make_verifier: MakeVerifier) -> Iterator[TestClient]:
    with TestClient(create_app(make_verifier(), sync_interval=None, clock=lambda: sim.now)) as c:
        yield c


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"code=SM1:abc", id="form"),
        pytest.param(b"SM1:NCFOXN", id="bare-code"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"code": "SM1:', id="cut-short"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="nested-too-deep"),
    ],
)
def test_a_body_that_is_not_json_is_400_invalid_json(client: TestClient, body: bytes) -> None:
    r = client.post("/v1/verify", content=body, headers=JSON_TYPE)
    assert r.status_code == 400
    problem = r.json()
    assert problem["error"] == "invalid_json"
    assert _chinese(problem["message_zh"]) and problem["message_en"].isascii()
    for message in (problem["message_zh"], problem["message_en"]):
        assert "JSON" in message and '{"code"' in message
        assert not re.search(r"\bat \)|\bat $|（）|\(\)", message), message  # no place left dangling
    assert 'suishenma_verifier_requests_rejected_total{why="invalid_json"} 1\n' in client.get("/metrics").text


def test_the_parser_says_where_the_json_went_wrong(client: TestClient) -> None:
    problem = client.post("/v1/verify", content=b'{"code" "x"}', headers=JSON_TYPE).json()
    assert "第 1 行第 9 列" in problem["message_zh"] and "line 1 column 9" in problem["message_en"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param(b"[]", None, id="not-an-object"),
        pytest.param(b'"SM1:x"', None, id="a-bare-string"),
        pytest.param(b'{"code": 5}', "code", id="code-not-a-string"),
        pytest.param(b"{}", "code", id="no-code"),
    ],
)
def test_json_of_the_wrong_shape_stays_422_and_names_the_field_only_when_there_is_one(
    client: TestClient, body: bytes, where: str | None
) -> None:
    r = client.post("/v1/verify", content=body, headers=JSON_TYPE)
    assert r.status_code == 422 and r.json()["error"] == "invalid_body"
    for message in (r.json()["message_zh"], r.json()["message_en"]):
        assert not re.search(r"\bat \)|\bat （|\bat $", message), message
        assert (f" at {where}" in message) if where else (" at " not in message), message


def _serve(state: Path, port: int, *options: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "verifier", "serve", "--state", str(state), "--port", str(port), "--no-sync"]
    return subprocess.Popen(
        [*cmd, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )


def _line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The next line ``proc`` prints on stdout; fails the test when none comes (``timeout`` bounds a hang)."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail(f"no line on stdout within {timeout} s; stderr: {proc.communicate()[1]}")
    return proc.stdout.readline()


@pytest.fixture()
def state(make_verifier: MakeVerifier, tmp_path: Path) -> Path:
    make_verifier(name="state").close()
    return tmp_path / "state"


@pytest.fixture()
def live(state: Path) -> Iterator[str]:
    """The URL of ``suishenma-verifier serve`` on a free loopback port, once it said it is listening."""
    port = free_port()
    proc = _serve(state, port)
    try:
        assert "listening on" in _line(proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_docs_work_with_no_network_every_asset_comes_from_the_service(live: str) -> None:
    page = httpx.get(live + "/docs", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    referenced = re.findall(r'(?:src|href)\s*=\s*"([^"]+)"', html) + re.findall(r"\burl:\s*'([^']+)'", html)
    assert len(referenced) >= 4, html  # the stylesheet, the icon, the script and the OpenAPI document
    assert not re.search(r"https?://|//[a-z0-9]", html, re.I), "the page names another host"
    host = urlsplit(live).netloc
    for ref in referenced:
        url = urljoin(live + "/docs", ref)
        assert urlsplit(url).netloc == host, url
        r = httpx.get(url, timeout=10)
        assert r.status_code == 200 and r.content, url
        if url.endswith(".css"):  # what a stylesheet loads is inline (data: URLs) or on this host
            for inner in re.findall(r"url\(\s*['\"]?([^'\")]+)", r.text):
                assert inner.startswith("data:") or urlsplit(urljoin(url, inner)).netloc == host, inner
    assert httpx.get(live + "/openapi.json", timeout=10).json()["info"]["title"] == "Suishenma local verifier"


def test_serve_says_where_it_listens_and_that_it_stopped(state: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        port = free_port()
        proc = _serve(state, port)
        started = _line(proc)
        url = f"http://127.0.0.1:{port}"
        zh, _, en = started.partition("Suishenma local verifier")
        assert _chinese(zh) and url in zh and str(state.resolve()) in zh
        assert en.startswith(" listening on") and url in en and str(state.resolve()) in en
        assert httpx.get(url + "/healthz", timeout=10).json() == {"ok": True}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        stopped = out.strip().splitlines()
        assert len(stopped) == 1 and _chinese(stopped[0].split("Suishenma")[0])
        assert f"stopped ({sig.name})" in stopped[0] and f"（{sig.name}）" in stopped[0]
        assert err == "", err


def test_serve_on_a_port_in_use_says_so_and_exits_2(state: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = _serve(state, port)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("错误：") and lines[1].startswith("error: ")
    assert str(port) in lines[0] and "已被占用" in lines[0]
    assert str(port) in lines[1] and "already in use" in lines[1] and "--port" in lines[1]
    assert "Errno" not in err and "uvicorn" not in err.lower()


def test_serve_help_documents_its_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "verifier", "serve", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    text = " ".join(out.split())
    assert (
        "Exit 0 after such a clean stop" in text and "2 on a usage error" in text and "port is already in use" in text
    )
