"""The local verifier service: verdicts over HTTP, body caps, the token, status, metrics and OpenAPI."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from suishenma import Status
from testing.live_issuer import free_port
from verifier.cli import main
from verifier.local_service import MAX_BODY_BYTES, create_app

from .conftest import MakeVerifier
from .sim import IssuerSim


@pytest.fixture()
def client(sim: IssuerSim, make_verifier: MakeVerifier) -> Iterator[TestClient]:
    v = make_verifier()
    with TestClient(create_app(v, sync_interval=None, clock=lambda: sim.now)) as c:
        yield c


def test_verify_returns_the_verdict_as_json(sim: IssuerSim, client: TestClient) -> None:
    r = client.post("/v1/verify", json={"code": sim.code()})
    assert r.status_code == 200
    body = r.json()
    assert body["decision"] == "ALLOW" and body["reason"] == "ok" and body["display"]["status"] == "green"
    assert {"message_zh", "message_en", "elapsed_ms"} <= set(body)
    red = client.post("/v1/verify", json={"code": sim.code(Status.RED)}).json()
    assert (red["decision"], red["reason"]) == ("DENY", "status_red")
    junk = client.post("/v1/verify", json={"code": "not a code"}).json()
    assert (junk["decision"], junk["reason"]) == ("DENY", "not_a_code")


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        pytest.param(b"code=SM1:abc", 400, "invalid_json", id="not-json"),
        pytest.param(b'{"code": 5}', 422, "invalid_body", id="code-not-a-string"),
        pytest.param(b'{"code": "x", "extra": 1}', 422, "invalid_body", id="unknown-field"),
        pytest.param(b"[" * 5000 + b"]" * 5000, 400, "invalid_json", id="deep-nesting"),
    ],
)
def test_bodies_that_are_not_a_code_request_are_refused(
    client: TestClient, content: bytes, status: int, error: str
) -> None:
    r = client.post("/v1/verify", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status and r.json()["error"] == error and r.json()["message_zh"]


def test_huge_body_is_refused_before_it_is_read(client: TestClient) -> None:
    json_type = {"content-type": "application/json"}
    r = client.post("/v1/verify", content=b'{"code": "' + b"A" * (MAX_BODY_BYTES * 4) + b'"}', headers=json_type)
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: capped as it streams in
        yield b'{"code": "'
        for _ in range(64):
            yield b"A" * 1024
        yield b'"}'

    r = client.post("/v1/verify", content=chunks(), headers=json_type)
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    assert 'requests_rejected_total{why="too_large"} 2' in client.get("/metrics").text


def test_status_reports_lists_staleness_and_clock(sim: IssuerSim, client: TestClient) -> None:
    body = client.get("/v1/status").json()
    assert body["trust_list_version"] == 1 and body["status_lists"]["SH"]["version"] == 1
    assert body["stale"] is False and body["clock_wrong"] is False
    assert body["clock_source"] == "http-date" and abs(body["clock_skew_s"]) <= 2
    assert client.get("/healthz").json() == {"ok": True}


def test_metrics_count_verdicts_by_decision_and_reason(sim: IssuerSim, client: TestClient) -> None:
    client.post("/v1/verify", json={"code": sim.code()})
    client.post("/v1/verify", json={"code": "x"})
    text = client.get("/metrics").text
    assert 'suishenma_verifier_verdicts_total{decision="ALLOW",reason="ok"} 1' in text
    assert 'suishenma_verifier_verdicts_total{decision="DENY",reason="not_a_code"} 1' in text
    assert "suishenma_verifier_clock_skew_seconds" in text and 'list_age_seconds{kind="status",list="SH"}' in text


def test_openapi_describes_the_verify_call(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/verify"]["post"]
    assert set(post["responses"]) >= {"200", "400", "413", "422"}
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["code"] and schema["additionalProperties"] is False
    assert "VerdictOut" in spec["components"]["schemas"]


def test_token_guards_everything_but_healthz(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    with TestClient(create_app(make_verifier(), token="s3cret", sync_interval=None, clock=lambda: sim.now)) as c:
        assert c.post("/v1/verify", json={"code": sim.code()}).status_code == 401
        wrong = c.get("/v1/status", headers={"Authorization": "Bearer s3cre"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorised"
        ok = c.post("/v1/verify", json={"code": sim.code()}, headers={"Authorization": "Bearer s3cret"})
        assert ok.json()["decision"] == "ALLOW"
        assert c.get("/healthz").status_code == 200


def test_service_with_a_token_answers_callers_that_name_it_by_a_network_name(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    """On a network the token is the guard (a page cannot send it): a Host such as a gate line's DNS name is
    served. Without a token the same request is misdirected."""
    v = make_verifier()
    lan = {"Host": "gate-line-3.metro.lan:8765", "Authorization": "Bearer s3cret"}
    with TestClient(create_app(v, token="s3cret", sync_interval=None, clock=lambda: sim.now)) as c:
        assert c.post("/v1/verify", json={"code": sim.code()}, headers=lan).json()["decision"] == "ALLOW"
    with TestClient(create_app(v, sync_interval=None, clock=lambda: sim.now)) as c:
        r = c.post("/v1/verify", json={"code": sim.code()}, headers={"Host": lan["Host"]})
        assert r.status_code == 421 and r.json()["error"] == "misdirected_request"


def test_background_sync_runs_at_start(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier(sync=False)
    with TestClient(create_app(v, sync_interval=3600, clock=lambda: sim.now)) as c:
        deadline = time.monotonic() + 10
        while c.get("/v1/status").json()["trust_list_version"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/v1/status").json()["trust_list_version"] == 1


def test_serve_refuses_a_public_address_without_a_token(
    sim: IssuerSim, make_verifier: MakeVerifier, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_verifier(name="state").close()
    state = str(tmp_path / "state")
    assert main(["serve", "--state", state, "--host", "0.0.0.0"]) == 2
    assert "not loopback: give --token-file" in capsys.readouterr().err
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o644)
    assert main(["serve", "--state", state, "--host", "0.0.0.0", "--token-file", str(token)]) == 2
    err = capsys.readouterr().err
    assert "token file" in err and "readable by others" in err


def _serve(state: Path, *options: str, host: str = "127.0.0.1") -> tuple[subprocess.Popen[bytes], str]:
    """``suishenma-verifier serve`` on ``state`` at ``host`` in a child process, once it answers /healthz (no
    sync). Fails the test when it never does."""
    port = free_port() if host == "127.0.0.1" else _free_port_at(host)
    cmd = [sys.executable, "-m", "verifier", "serve", "--state", str(state), "--port", str(port), "--no-sync"]
    proc = subprocess.Popen([*cmd, "--host", host, *options], env=os.environ.copy())
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    deadline = time.monotonic() + 20  # bounds a hang only
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    pytest.fail(f"the service at {url} never answered /healthz")


def _free_port_at(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def test_live_service_answers_many_connections_at_once(
    sim: IssuerSim, make_verifier: MakeVerifier, tmp_path: Path
) -> None:
    make_verifier(name="state").close()
    proc, url = _serve(tmp_path / "state", "--limit-concurrency", "64")
    try:
        code = sim.code()

        def one(_: int) -> int:  # each request on its own connection: 200 connections, 8 at a time
            try:
                return httpx.post(url + "/v1/verify", json={"code": code}, timeout=10).status_code
            except httpx.HTTPError:
                return 0

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(200)))
        # past the concurrency limit a connection is answered 503, never left hanging; the rest are verdicts
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 100
        assert httpx.get(url + "/healthz", timeout=2).status_code == 200  # still up
    finally:
        proc.terminate()
        proc.wait(10)


def test_service_killed_mid_burst_has_logged_every_verdict_it_answered(
    sim: IssuerSim, make_verifier: MakeVerifier, tmp_path: Path
) -> None:
    """Group commit answers a verdict only after its record is on disk: kill -9 loses none that were answered."""
    import sqlite3
    import threading

    from verifier.store import DB_NAME

    make_verifier("transit", name="state").close()
    proc, url = _serve(tmp_path / "state")
    answered: list[str] = []
    lock, stop = threading.Lock(), threading.Event()
    try:

        def gate() -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/v1/verify", json={"code": sim.code()})
                    except httpx.HTTPError:
                        return  # the process is gone
                    with lock:
                        answered.append(r.json()["decision"])

        gates = [threading.Thread(target=gate) for _ in range(6)]
        for g in gates:
            g.start()
        deadline = time.monotonic() + 60  # bounds a hang only
        while len(answered) < 150:
            time.sleep(0.01)
            assert proc.poll() is None and time.monotonic() < deadline
        proc.kill()
        proc.wait(10)
        stop.set()
        for g in gates:
            g.join(15)
    finally:
        if proc.poll() is None:
            proc.kill()
    conn = sqlite3.connect(tmp_path / "state" / DB_NAME)
    logged = conn.execute("SELECT COUNT(*) FROM scans").fetchone()[0]
    conn.close()
    assert logged >= len(answered) >= 150  # every answered verdict is on disk (unanswered ones may be too)


@pytest.fixture()
def live(make_verifier: MakeVerifier, tmp_path: Path) -> Iterator[str]:
    """The URL of ``suishenma-verifier serve`` running on 127.0.0.1 without a token (no sync)."""
    make_verifier(name="state").close()
    proc, url = _serve(tmp_path / "state")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _call(
    url: str, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
) -> tuple[int, http.client.HTTPMessage, Any]:
    """One raw request to the service at ``url``, headers as given (a Host among them replaces the one
    http.client would write): status, headers and the body parsed as JSON (its text when it is not)."""
    at = urlsplit(url)
    conn = http.client.HTTPConnection(at.hostname or "", at.port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=dict(headers))
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    try:
        return r.status, r.headers, json.loads(raw)
    except ValueError:
        return r.status, r.headers, raw.decode(errors="replace")


def _raw(url: str, request: bytes) -> tuple[int, Any]:
    """``request`` written byte for byte to the service at ``url``: the status and the body parsed as JSON."""
    at = urlsplit(url)
    with socket.create_connection((at.hostname or "", at.port or 80), timeout=10) as sock:
        sock.sendall(request)
        r = http.client.HTTPResponse(sock)
        r.begin()
        raw = r.read()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw.decode(errors="replace")


def _authority(url: str) -> str:
    return urlsplit(url).netloc


def _metrics(url: str) -> str:
    status, _, text = _call(url, "GET", "/metrics", {"Host": _authority(url)})
    assert status == 200
    return str(text)


def _assert_problem(body: Any, error: str) -> None:
    """A bilingual JSON problem with reason code ``error``: Chinese first, then English."""
    assert isinstance(body, dict) and body["error"] == error, body
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message_zh"]) and body["message_en"].isascii()


def test_trailing_slash_redirect_does_not_echo_host(sim: IssuerSim, live: str) -> None:
    code = json.dumps({"code": sim.code()}).encode()
    json_type = {"Content-Type": "application/json"}
    for host in (_authority(live), f"localhost:{urlsplit(live).port}"):
        status, headers, body = _call(live, "POST", "/v1/verify/", {"Host": host, **json_type}, code)
        assert (status, headers["Location"]) == (404, None)
        _assert_problem(body, "not_found")
        for path in ("/healthz/", "/metrics/", "/v1/status/", "/docs/", "/docs/oauth2-redirect"):
            status, headers, body = _call(live, "GET", path, {"Host": host})
            assert (status, headers["Location"]) == (404, None), path
            _assert_problem(body, "not_found")
    status, headers, body = _call(live, "POST", "/v1/verify/", {"Host": "evil.example", **json_type}, code)
    assert (status, headers["Location"]) == (421, None) and "evil.example" not in json.dumps(body)
    _assert_problem(body, "misdirected_request")


# What a browser sends cross-site without a CORS preflight (a fetch of a string body is text/plain), or none.
WEB_PAGE_CONTENT_TYPES = (
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    None,
    "application/json-seq",
)


def test_text_plain_body_from_a_web_page_is_refused_415(sim: IssuerSim, live: str) -> None:
    """A cross-site post a browser sends without asking first never reaches the verifier."""
    code = json.dumps({"code": sim.code()}).encode()
    for content_type in WEB_PAGE_CONTENT_TYPES:
        headers = {"Host": _authority(live), **({"Content-Type": content_type} if content_type else {})}
        status, _, body = _call(live, "POST", "/v1/verify", headers, code)
        assert status == 415, content_type
        _assert_problem(body, "unsupported_media_type")
        assert "application/json" in body["message_zh"] and "application/json" in body["message_en"]
    preflight = {"Host": _authority(live), "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    status, answer, _ = _call(live, "OPTIONS", "/v1/verify", preflight)  # what a JSON post needs: never granted
    assert status == 405 and answer["Access-Control-Allow-Origin"] is None
    text = _metrics(live)
    assert f'requests_rejected_total{{why="unsupported_media_type"}} {len(WEB_PAGE_CONTENT_TYPES)}' in text
    assert "suishenma_verifier_verdicts_total{" not in text  # nothing was verified, nothing logged


# Hosts a page under a rebound domain, or a misaddressed client, would send to a service on 127.0.0.1:{port}.
FOREIGN_HOSTS = (
    "evil.example:{port}",
    "evil.example",
    "127.0.0.1.nip.io:{port}",  # a name that resolves to loopback is still not this service's address
    "localhost.evil.example:{port}",
    "127.0.0.1:{other}",
    "127.0.0.1",
    "[::1]:{port}",  # loopback, but not the address bound
    "0.0.0.0:{port}",
    "",
)


def test_dns_rebinding_host_is_refused(sim: IssuerSim, live: str) -> None:
    """A page whose domain was re-pointed at 127.0.0.1 is same-origin to the browser but names it in Host."""
    port = urlsplit(live).port or 0
    code = json.dumps({"code": sim.code()}).encode()
    for foreign in FOREIGN_HOSTS:
        host = foreign.format(port=port, other=port + 1)
        headers = {"Host": host, "Content-Type": "application/json"}
        status, _, body = _call(live, "POST", "/v1/verify", headers, code)
        assert status == 421, host
        _assert_problem(body, "misdirected_request")
        for path in ("/metrics", "/healthz", "/v1/status", "/openapi.json", "/docs"):
            status, _, body = _call(live, "GET", path, {"Host": host})
            assert status == 421, (host, path)
            _assert_problem(body, "misdirected_request")
    text = _metrics(live)
    assert f'requests_rejected_total{{why="misdirected"}} {6 * len(FOREIGN_HOSTS)}' in text
    assert "suishenma_verifier_verdicts_total{" not in text


def test_request_with_two_hosts_is_refused_and_an_http_1_0_controller_without_one_is_served(live: str) -> None:
    """A browser always sends one Host: a request without any comes from a program (an HTTP/1.0 gate
    controller), not a rebinding page."""
    port = urlsplit(live).port
    status, _ = _raw(live, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status == 200
    two = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    for request in (two,):
        status, body = _raw(live, request.encode())
        assert status in (400, 421)  # uvicorn's h11 parser refuses both itself (400); httptools hands them on
        if status == 421:
            _assert_problem(body, "misdirected_request")


def test_gate_controller_on_loopback_is_still_served(sim: IssuerSim, live: str) -> None:
    port = urlsplit(live).port
    code = json.dumps({"code": sim.code()}).encode()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}"):
        for content_type in ("application/json", "Application/JSON; charset=utf-8"):
            headers = {"Host": host, "Content-Type": content_type}
            status, _, body = _call(live, "POST", "/v1/verify", headers, code)
            assert status == 200 and body["decision"] in ("ALLOW", "DENY", "REFER"), body
        for path in ("/healthz", "/metrics", "/v1/status"):
            assert _call(live, "GET", path, {"Host": host})[0] == 200
    assert httpx.post(live + "/v1/verify", json={"code": sim.code()}, timeout=10).status_code == 200
    r = httpx.post(f"http://localhost:{port}/v1/verify", json={"code": sim.code()}, timeout=10)
    assert r.status_code == 200 and "decision" in r.json()


def test_ipv6_loopback_service_answers_its_own_address_and_localhost_only(
    sim: IssuerSim, make_verifier: MakeVerifier, tmp_path: Path
) -> None:
    try:
        _free_port_at("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    make_verifier(name="state").close()
    proc, url = _serve(tmp_path / "state", host="::1")
    try:
        port = urlsplit(url).port
        code = json.dumps({"code": sim.code()}).encode()
        for host, expected in ((f"[::1]:{port}", 200), (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 421)):
            headers = {"Host": host, "Content-Type": "application/json"}
            status, _, body = _call(url, "POST", "/v1/verify", headers, code)
            assert status == expected, host
            if status == 421:
                _assert_problem(body, "misdirected_request")
                assert f"[::1]:{port}" in body["message_en"]
    finally:
        proc.terminate()
        proc.wait(10)
