"""The issuer as a city runs it: several workers on one database, mints counted rather than audited, a worker
killed mid-burst, the database going away and coming back, and moving an SQLite issuer to PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from issuer import Settings, create_app
from issuer.audit_chain import verify_chain
from issuer.cli import main
from testing.live_issuer import LiveIssuer, create_api_key, init_dir

from ..pg_server import PgServer
from .conftest import bearer, enrol, new_person, query, storage_of


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _wait(condition: object, what: str, limit: float = 20.0) -> None:
    """Poll ``condition`` until true; the bound only stops a hang (nothing here asserts on elapsed time)."""
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _minted(home: Path) -> int:
    store = storage_of(home)
    try:
        return sum(m.count for m in store.mint_counts())
    finally:
        store.close()


def test_minting_writes_no_audit_row_and_is_counted_per_key_and_minute(
    settings: Settings, keys: dict[str, str], home: Path
) -> None:
    with TestClient(create_app(settings)) as client:
        subject = enrol(client, keys["enrol"])
        store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
        head = store.audit_head()
        for scenario in ("venue", "venue", "transit"):
            r = client.post(f"/v1/subjects/{subject}/codes", json={"scenario": scenario}, headers=bearer(keys["mint"]))
            assert r.status_code == 200
        assert store.audit_head() == head  # minting changed no state, so it appended nothing
        ((last_expiry,),) = query(store, "SELECT last_expiry FROM signing_keys")
        assert int(last_expiry) >= int(time.time()) + 60  # the key stays listed past its newest code
    counts = {(m.actor, m.scenario): m.count for m in storage_of(home).mint_counts()}  # flushed at shutdown
    assert counts == {("mint", "venue"): 2, ("mint", "transit"): 1}


def test_mint_counts_lost_to_a_kill_are_at_most_the_last_flush_interval(home: Path, keys: dict[str, str]) -> None:
    env = {"SUISHENMA_ISSUER_MINT_COUNT_FLUSH_S": "0.2"}
    server = LiveIssuer(home, env=env).start()
    with httpx.Client(base_url=server.url) as c:
        subject = c.post("/v1/subjects", json=new_person(), headers=h(keys["enrol"])).json()["subject"]
        for _ in range(30):
            assert c.post(f"/v1/subjects/{subject}/codes", json={}, headers=h(keys["mint"])).status_code == 200
        _wait(lambda: _minted(home) == 30, "the first 30 mints to be flushed")
        for _ in range(20):
            assert c.post(f"/v1/subjects/{subject}/codes", json={}, headers=h(keys["mint"])).status_code == 200
    server.kill()  # no shutdown flush: what was counted since the last flush is the loss
    counted = _minted(home)
    assert 30 <= counted <= 50  # never more than minted; at most the mints since the last flush lost


@pytest.fixture()
def two_workers(home: Path, keys: dict[str, str]) -> Iterator[LiveIssuer]:
    with LiveIssuer(home, args=("--workers", "2")) as server:
        yield server


def _workers(server: LiveIssuer) -> list[int]:
    assert server.proc is not None
    out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    # uvicorn's supervisor also runs a resource tracker; the workers are the ones serving the app
    return [p for p in pids if b"multiprocessing.resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def test_two_workers_share_one_rate_bucket_per_key(two_workers: LiveIssuer, home: Path) -> None:
    # one request per 100 s, a burst of one: the refill during the run is a small fraction of a token however
    # slowly a loaded machine serves the 20 requests, so the count below does not depend on timing
    key = create_api_key(home, "slow", "status", rate=0.01)
    codes = []
    for _ in range(20):  # a new connection each time, so both workers take requests
        with httpx.Client(base_url=two_workers.url) as c:
            codes.append(c.get("/v1/subjects/0123456789abcdef", headers=h(key)).status_code)
    assert codes.count(404) == 1 and codes.count(429) == 19  # one burst for the key, not one per worker


def test_revoked_key_and_rotated_signing_key_reach_every_worker(
    two_workers: LiveIssuer, home: Path, keys: dict[str, str]
) -> None:
    with httpx.Client(base_url=two_workers.url) as c:
        subject = c.post("/v1/subjects", json=new_person(), headers=h(keys["enrol"])).json()["subject"]
    assert main(["--dir", str(home), "keys", "rotate", "--json"]) == 0
    assert main(["--dir", str(home), "api-key", "revoke", "--name", "status"]) == 0
    new_kid = storage_of(home).signing_keys()[-1].kid

    def kids() -> set[str]:
        from suishenma import inspect

        seen = set()
        for _ in range(8):
            with httpx.Client(base_url=two_workers.url) as c:
                code = c.post(f"/v1/subjects/{subject}/codes", json={}, headers=h(keys["mint"])).json()["code"]
            seen.add(inspect(code).kid.hex())
        return seen

    _wait(lambda: kids() == {new_kid}, "every worker to mint with the new key")

    def refused() -> bool:
        results = set()
        for _ in range(8):
            with httpx.Client(base_url=two_workers.url) as c:
                results.add(c.get(f"/v1/subjects/{subject}", headers=h(keys["status"])).status_code)
        return results == {401}

    _wait(refused, "every worker to refuse the revoked key")


def test_worker_killed_during_a_write_burst_loses_nothing_acknowledged(
    two_workers: LiveIssuer, home: Path, keys: dict[str, str]
) -> None:
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            try:
                with httpx.Client(base_url=two_workers.url, timeout=10) as c:
                    r = c.post("/v1/subjects", json=new_person(), headers=h(keys["enrol"]))
            except httpx.HTTPError:
                continue  # the killed worker's connection: not acknowledged
            if r.status_code == 201:
                with lock:
                    acknowledged.append(r.json()["subject"])

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    _wait(lambda: len(acknowledged) >= 20, "writes to be acknowledged")
    victim = _workers(two_workers)[0]
    os.kill(victim, signal.SIGKILL)
    count = len(acknowledged)
    _wait(lambda: len(acknowledged) >= count + 20, "writes to go on after the kill")
    stop.set()
    for t in threads:
        t.join()
    two_workers.stop()
    store = storage_of(home)
    held = {r[0] for r in query(store, "SELECT subject FROM subjects")}
    assert set(acknowledged) <= held
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok
    store.close()


def test_database_going_away_answers_503_changes_nothing_half_way_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("a database server to stop: PostgreSQL only")
    server = PgServer()  # its own server: stopping the shared one would fail other tests
    server.start()
    try:
        monkeypatch.setenv("SUISHENMA_ISSUER_DATABASE_URL", server.create_database())
        init_dir(tmp_path)
        admin = create_api_key(tmp_path, "ops", "enrol,status,mint")
        with LiveIssuer(tmp_path) as live, httpx.Client(base_url=live.url, timeout=30) as c:
            subject = c.post("/v1/subjects", json=new_person(), headers=h(admin)).json()["subject"]
            ok: list[str] = []
            refused: list[dict[str, object]] = []
            stop = threading.Event()

            def writer(n: int) -> None:
                i = 0
                with httpx.Client(base_url=live.url, timeout=30) as w:
                    while not stop.is_set():
                        i += 1
                        reason = f"w{n}-{i}"
                        body = {"status": ("green", "red")[i % 2], "reason": reason}
                        r = w.put(f"/v1/subjects/{subject}/status", json=body, headers=h(admin))
                        if r.status_code == 200:
                            ok.append(reason)
                        else:
                            refused.append(r.json())

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
            for t in threads:
                t.start()
            _wait(lambda: len(ok) >= 10, "writes before the outage")
            server.stop("fast")  # open transactions are rolled back by the server
            _wait(lambda: len(refused) >= 5, "writes refused during the outage")
            r = c.post(f"/v1/subjects/{subject}/codes", json={}, headers=h(admin))
            assert r.status_code == 503 and r.json()["error"] == "database_unavailable" and r.json()["message_zh"]
            _wait(lambda: c.get("/healthz").status_code == 503, "healthz to notice", limit=10)
            assert c.get("/healthz").json()["reason"] == "database_unavailable"
            server.start()
            before = len(ok)
            _wait(lambda: len(ok) >= before + 10, "writes to succeed again after the database came back")
            stop.set()
            for t in threads:
                t.join()
            assert {e["error"] for e in refused} == {"database_unavailable"}
            assert c.post(f"/v1/subjects/{subject}/codes", json={}, headers=h(admin)).status_code == 200
            _wait(lambda: c.get("/healthz").status_code == 200, "healthz to recover", limit=10)
        store = storage_of(tmp_path)
        audited = {json.loads(r.detail)["reason"] for r in store.audit_rows() if r.action == "subject.status"}
        assert set(ok) <= audited  # every acknowledged change landed with its audit row
        assert verify_chain(store.audit_rows(), store.audit_high_water()).ok
        store.close()
    finally:
        server.close()


def test_db_copy_moves_an_sqlite_issuer_to_postgresql_with_its_audit_chain(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    if backend != "sqlite":
        pytest.skip("copies from the SQLite default")
    pg: PgServer = request.getfixturevalue("pg")
    init_dir(tmp_path)
    with TestClient(create_app(Settings(base_dir=tmp_path))) as client:
        key = create_api_key(tmp_path, "ops", "enrol,status,mint")
        person = new_person()
        s = enrol(client, key, person)
        client.put(f"/v1/subjects/{s}/status", json={"status": "red"}, headers=bearer(key))
        index = client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(key)).status_code
        assert index == 409  # red: no paper code; the refusal changed nothing either
        client.put(f"/v1/subjects/{s}/status", json={"status": "green"}, headers=bearer(key))
        assert client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(key)).status_code == 201
    url = pg.create_database()
    capsys.readouterr()
    assert main(["--dir", str(tmp_path), "db", "copy", "--to", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"]["subjects"] == 1 and report["rows"]["offline_codes"] == 1
    assert main(["--dir", str(tmp_path), "db", "copy", "--to", url]) == 1  # never into a database in use
    assert "not empty" in capsys.readouterr().err
    monkeypatch.setenv("SUISHENMA_ISSUER_DATABASE_URL", url)
    capsys.readouterr()
    assert main(["--dir", str(tmp_path), "audit", "verify", "--json"]) == 0  # chain and checkpoint hold there
    assert json.loads(capsys.readouterr().out)["ok"] is True
    with TestClient(create_app(Settings(base_dir=tmp_path))) as client:
        r = client.get(f"/v1/subjects/{s}", headers=bearer(key))
        assert r.status_code == 200 and r.json()["masked_name"] == "张*三"  # the sealed name opens
        assert enrol(client, key)  # new rows get fresh ids after the copied ones
        again = client.post("/v1/subjects", json=person, headers=bearer(key))
        assert again.status_code == 409 and again.json()["error"] == "already_enrolled"  # the look-up index moved


def test_rotated_data_key_reseals_everyone_and_old_backups_need_the_old_key(
    home: Path, client: TestClient, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    people = [enrol(client, keys["enrol"]) for _ in range(3)]
    capsys.readouterr()
    assert main(["--dir", str(home), "keys", "rotate-data", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"data_key": 2, "resealed": 3}
    store = storage_of(home)
    assert {store.sealer.sealed_with(n) for _, n, _ in store.subjects_sealed("", 10)} == {2}
    assert all(store.subject_get(s) is not None for s in people)
    store.close()


def test_one_worker_builds_the_next_status_list_while_the_others_serve_the_held_one(
    settings: Settings, home: Path
) -> None:
    from issuer.lists.publisher import Publisher
    from issuer.storage import PublishedList

    store = storage_of(home)
    now = int(time.time())
    a, b = Publisher(settings, store), Publisher(settings, store)
    held = a.status_list(now)
    subject = "00000000000000aa"
    store.subject_create(subject, "张小三", "310101199001011234", now, "t")
    index = store.offline_issue(subject, "k", now + 86400, now, "t")
    store.offline_set_state(index, 1, now, "t")  # the held list is now out of date
    assert store.lease("build:status:SH", "another worker", now, 120)  # which is building the next one
    assert b.status_list(now + 1).version == held.version  # meanwhile: the held list, no second build
    assert store.lease("build:status:SH", "another worker", now, -1)  # done (released)
    raced = PublishedList("status:SH", held.version + 1, b"built elsewhere", '"x"', now, now + 600, 0, held.size)
    store.list_put(raced, "another worker", 1)  # a build that won a race after the lease ran out
    mine = PublishedList("status:SH", held.version + 1, b"built here", '"y"', now, now + 600, 0, held.size)
    out = a._publish(mine, "this worker", 1, lambda: store.list_get("status:SH"))
    assert out.body == b"built elsewhere"  # the version published first stands: served, nothing raised
    store.close()
