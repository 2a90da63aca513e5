"""The local verifier service: verdicts over HTTP, body caps, the token, status, metrics and OpenAPI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    ("content", "status"),
    [
        pytest.param(b"code=SM1:abc", 422, id="not-json"),
        pytest.param(b'{"code": 5}', 422, id="code-not-a-string"),
        pytest.param(b'{"code": "x", "extra": 1}', 422, id="unknown-field"),
        pytest.param(b"[" * 5000 + b"]" * 5000, 422, id="deep-nesting"),
    ],
)
def test_bodies_that_are_not_a_code_request_are_refused(client: TestClient, content: bytes, status: int) -> None:
    r = client.post("/v1/verify", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status and r.json()["error"] == "invalid_body" and r.json()["message_zh"]


def test_huge_body_is_refused_before_it_is_read(client: TestClient) -> None:
    r = client.post("/v1/verify", content=b'{"code": "' + b"A" * (MAX_BODY_BYTES * 4) + b'"}')
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: capped as it streams in
        yield b'{"code": "'
        for _ in range(64):
            yield b"A" * 1024
        yield b'"}'

    r = client.post("/v1/verify", content=chunks())
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
    assert "suishenma_verifier_clock_skew_seconds" in text and 'list_age_seconds{list="status:SH"}' in text


def test_openapi_describes_the_verify_call(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/verify"]["post"]
    assert set(post["responses"]) >= {"200", "413", "422"}
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["code"] and schema["additionalProperties"] is False
    assert "VerdictOut" in spec["components"]["schemas"]


def test_token_guards_everything_but_healthz(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    with TestClient(create_app(make_verifier(), token="s3cret", sync_interval=None)) as c:
        assert c.post("/v1/verify", json={"code": sim.code()}).status_code == 401
        wrong = c.get("/v1/status", headers={"Authorization": "Bearer s3cre"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorised"
        ok = c.post("/v1/verify", json={"code": sim.code()}, headers={"Authorization": "Bearer s3cret"})
        assert ok.json()["decision"] == "ALLOW"
        assert c.get("/healthz").status_code == 200


def test_background_sync_runs_at_start(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier(sync=False)
    with TestClient(create_app(v, sync_interval=3600)) as c:
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


def _serve(state: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """``suishenma-verifier serve`` on ``state`` in a child process, once it answers /healthz (no sync)."""
    port = free_port()
    cmd = [sys.executable, "-m", "verifier", "serve", "--state", str(state), "--port", str(port), "--no-sync"]
    proc = subprocess.Popen([*cmd, *options], env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20  # bounds a hang only
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    return proc, url


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
