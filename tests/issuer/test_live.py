"""Against a real issuer process on loopback: end to end, concurrency, kill -9, and schemathesis."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from issuer.audit_chain import verify_chain
from suishenma import load_verification_key, parse_trust_list, verify
from testing.live_issuer import LiveIssuer

from .conftest import PERSON, new_person, person_of, query, storage_of


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_enrol_mint_and_verify_over_http(live: LiveIssuer, keys: dict[str, str], home: Path) -> None:
    with httpx.Client(base_url=live.url) as c:
        subject = c.post("/v1/subjects", json=PERSON, headers=h(keys["enrol"])).json()["subject"]
        code = c.post(f"/v1/subjects/{subject}/codes", json={"scenario": "hospital"}, headers=h(keys["mint"])).json()
        now = int(time.time())
        trust = parse_trust_list(
            c.get("/v1/trust-list").content, load_verification_key(home / "keys/root.pub"), now=now
        )
        assert person_of(home, verify(code["code"], trust.keyring, now=now).claims.subject) == subject
    log = live.log.read_text(errors="replace")
    assert "PRIVATE KEY" not in log and keys["mint"] not in log


def test_concurrent_status_updates_all_land_and_the_chain_holds(
    live: LiveIssuer, keys: dict[str, str], home: Path
) -> None:
    with httpx.Client(base_url=live.url) as c:
        subject = c.post("/v1/subjects", json=PERSON, headers=h(keys["enrol"])).json()["subject"]
    acknowledged: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        with httpx.Client(base_url=live.url) as c:
            for i in range(15):
                status = ("green", "yellow", "red")[(n + i) % 3]
                body = {"status": status, "reason": f"w{n}-{i}"}
                r = c.put(f"/v1/subjects/{subject}/status", json=body, headers=h(keys["status"]))
                assert r.status_code == 200, r.text
                with lock:
                    acknowledged.append(f"w{n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    live.stop()
    store = storage_of(home)
    rows = [r for r in store.audit_rows() if r.action == "subject.status"]
    assert sorted(r.detail.split('"reason":"')[1].split('"')[0] for r in rows) == sorted(acknowledged)
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok
    last = rows[-1].detail
    assert store.subject_get(subject).status in last  # type: ignore[union-attr]


@pytest.mark.parametrize("run", range(3))
def test_kill_9_during_write_burst_keeps_every_acknowledged_write(home: Path, keys: dict[str, str], run: int) -> None:
    server = LiveIssuer(home).start()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    enough = threading.Event()  # the kill lands mid-burst, after a number of writes that varies by run
    target = 25 + 15 * run

    def writer() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/subjects", json=new_person(), headers=h(keys["enrol"]))
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    with lock:
                        acknowledged.append(r.json()["subject"])
                        if len(acknowledged) >= target:
                            enough.set()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    assert enough.wait(120), f"only {len(acknowledged)} writes acknowledged"  # the bound only stops a hang
    server.kill()  # the writers are still sending
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= target
    store = storage_of(home)  # reopens: WAL recovery
    held = {r[0] for r in query(store, "SELECT subject FROM subjects")}
    assert set(acknowledged) <= held
    enrolled = {r.target for r in store.audit_rows() if r.action == "subject.enrol"}
    assert held == enrolled  # no subject without its audit row, and no audit row without its subject
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok
    store.close()
    assert subprocess.run([sys.executable, "-m", "issuer", "--dir", str(home), "audit", "verify"]).returncode == 0


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(live: LiveIssuer, keys: dict[str, str]) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("schemathesis is not installed (it comes with the [dev] extra)")
    admin = live.base / "admin.key"
    from testing.live_issuer import create_api_key

    admin_key = create_api_key(live.base, "schemathesis", "admin", rate=1e6)
    admin.write_text(admin_key)
    result = subprocess.run(
        [
            exe,
            "run",
            f"{live.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--header",
            f"Authorization: Bearer {admin_key}",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
