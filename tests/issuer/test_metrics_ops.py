"""The issuer's operational metrics: how long each signature takes by kind, issuance by kind, and the gauges a
scrape evaluates (can it sign, does the database answer, do audit checkpoints keep up). ``/metrics`` answers
200 whatever is broken: an outage that failed the scrape would hide itself from the alert meant to show it."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from issuer import Settings, create_app
from issuer.http.app_state import Context
from issuer.http.metrics import Metrics, Scraper
from issuer.storage import Anchoring
from issuer.storage.sqlite import SQLiteStorage
from suishenma import Alg, DeviceKey, SigningKey

from ..pg_server import PgServer
from .conftest import Clock, bearer, enrol

NOW = 1_790_000_000

SIGNING = "suishenma_issuer_signing_seconds"
KINDS = ("dynamic", "offline", "device_credential", "status_list", "timestamp", "trust_list", "audit_checkpoint")
AUDIT_GAUGES = (
    "suishenma_issuer_audit_unanchored_rows",
    "suishenma_issuer_audit_lag_seconds",
    "suishenma_issuer_audit_checkpoint_timestamp_seconds",
)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Exposition:
    """A parsed Prometheus text exposition (format 0.0.4): families' TYPE and HELP, and the samples."""

    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.samples)

    def signed(self, kind: str) -> int:
        return int(self.value(f"{SIGNING}_count", kind=kind))


def parse(text: str) -> Exposition:
    """Raises: AssertionError for a line that is not exposition text, a sample twice, or a sample whose family
    has no TYPE or HELP line before it."""
    out = Exposition()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert help_text, line
            out.helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            out.types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample: {line!r}"
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in out.types else name
            assert family in out.types and family in out.helps, f"{name} has no TYPE or HELP line before it"
            key = (name, frozenset(LABEL.findall(labels)))
            assert key not in out.samples, f"{line!r} twice"
            out.samples[key] = float(value)
    return out


def scrape(client: TestClient) -> Exposition:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def _slot_keys(n: int) -> list[dict[str, str]]:
    return [DeviceKey.of(SigningKey.generate(Alg.ES256)).to_jwk() for _ in range(n)]


@pytest.fixture()
def quiet_settings(home: Path) -> Settings:
    """Checkpoints once at start (and at stop): the test writes the others itself, at instants it chooses."""
    return Settings(base_dir=home, audit_checkpoint_s=3600)


@pytest.fixture()
def issuer(quiet_settings: Settings, clock: Clock, keys: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(quiet_settings, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert app.state.audit_ticker.ticked.wait(10)  # its first checkpoint is written: nothing signs unasked
        yield c


def ctx_of(client: TestClient) -> Context:
    ctx: Context = client.app.state.ctx  # type: ignore[attr-defined]
    return ctx


def test_every_signature_is_timed_under_its_kind_and_every_issued_kind_is_counted(
    issuer: TestClient, keys: dict[str, str], clock: Clock
) -> None:
    before = scrape(issuer)
    assert all(before.signed(kind) >= 0 for kind in KINDS)  # every kind has its series from the start
    for code_type in ("dynamic", "offline", "device_credential"):  # series exist before the first issue
        assert before.value("suishenma_codes_minted_total", type=code_type) >= 0
    s = enrol(issuer, keys["enrol"])
    mint = bearer(keys["mint"])
    for _ in range(3):
        assert issuer.post(f"/v1/subjects/{s}/codes", json={}, headers=mint).status_code == 200
    paper = issuer.post(f"/v1/subjects/{s}/offline-codes", headers=mint)
    assert paper.status_code == 201
    index = paper.json()["status_index"]
    assert issuer.post(f"/v1/offline-codes/{index}/revoke", headers=bearer(keys["revoke"])).status_code == 200
    phone = DeviceKey.of(SigningKey.generate(Alg.ES256)).to_jwk()
    body = {"jwk": phone, "keys": _slot_keys(4)}
    assert issuer.post(f"/v1/subjects/{s}/device-credentials", json=body, headers=mint).status_code == 201
    assert issuer.get("/v1/status-lists/SH").status_code == 200  # rebuilt: a paper code was revoked
    assert issuer.get("/v1/status-lists/SH/timestamp").status_code == 200
    service = ctx_of(issuer).service
    service.publisher.trust_list(int(clock()), force=True)
    assert service.anchor.write(int(clock()), keep_lease=True) is not None

    after = scrape(issuer)
    signed = {kind: after.signed(kind) - before.signed(kind) for kind in KINDS}
    assert signed == {
        "dynamic": 3,
        "offline": 1,
        "device_credential": 4,  # one signature per credential, not per batch
        "status_list": 1,
        "timestamp": 1,
        "trust_list": 1,
        "audit_checkpoint": 1,
    }
    minted = {
        t: after.value("suishenma_codes_minted_total", type=t) - before.value("suishenma_codes_minted_total", type=t)
        for t in ("dynamic", "offline", "device_credential")
    }
    assert minted == {"dynamic": 3, "offline": 1, "device_credential": 4}
    assert after.types[SIGNING] == "histogram"
    for kind in KINDS:  # cumulative buckets that end in the count, and a sum that grew with it
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for (name, labels), v in after.samples.items()
            if name == f"{SIGNING}_bucket" and dict(labels)["kind"] == kind
        )
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        assert buckets[-1] == (float("inf"), after.signed(kind))
        assert after.value(f"{SIGNING}_sum", kind=kind) >= before.value(f"{SIGNING}_sum", kind=kind)
    assert after.value(f"{SIGNING}_sum", kind="dynamic") > before.value(f"{SIGNING}_sum", kind="dynamic")


@pytest.mark.parametrize("backend", ["sqlite"])  # the key file is the same on either backend
def test_a_key_that_cannot_sign_gives_can_sign_0_and_the_scrape_still_answers(issuer: TestClient, home: Path) -> None:
    assert scrape(issuer).value("suishenma_issuer_can_sign") == 1
    (key_file,) = (home / "keys").glob("issuer-*.key")
    kept = key_file.read_bytes()
    key_file.unlink()
    gone = scrape(issuer)
    assert gone.value("suishenma_issuer_can_sign") == 0
    assert gone.value("suishenma_issuer_database_up") == 1  # only the key is at fault
    assert issuer.get("/healthz").json()["reason"] == "key_file_missing"  # the same check, the same answer
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    assert scrape(issuer).value("suishenma_issuer_can_sign") == 0
    assert issuer.get("/healthz").json()["reason"] == "key_file_damaged"
    key_file.write_bytes(kept)
    assert scrape(issuer).value("suishenma_issuer_can_sign") == 1


@contextmanager
def sqlite_gone(store: SQLiteStorage) -> Iterator[None]:
    """The SQLite connection fails under the running issuer (as on a disk that went away); restored after."""
    store.conn.close()
    try:
        yield
    finally:
        conn = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.create_function("GREATEST", 2, max, deterministic=True)
        conn.create_function("LEAST", 2, min, deterministic=True)
        store.conn = conn


@contextmanager
def postgres_gone(pg: PgServer, database_url: str) -> Iterator[None]:
    """Nobody may connect to the issuer's database and its connections are cut: the database is away."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg.url(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')  # type: ignore[arg-type]
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')  # type: ignore[arg-type]


def _eventually(check: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_database_that_does_not_answer_gives_database_up_0_without_the_audit_gauges(
    issuer: TestClient, backend: str, database_url: str, request: pytest.FixtureRequest
) -> None:
    up = scrape(issuer)
    assert up.value("suishenma_issuer_database_up") == 1
    assert all(up.has(name) for name in AUDIT_GAUGES)
    store = ctx_of(issuer).service.storage
    if backend == "sqlite":
        assert isinstance(store, SQLiteStorage)
        outage = sqlite_gone(store)
    else:
        outage = postgres_gone(request.getfixturevalue("pg"), database_url)
    with outage:
        down = scrape(issuer)  # a 200, not a 500
        assert down.value("suishenma_issuer_database_up") == 0
        assert not any(down.has(name) for name in (*AUDIT_GAUGES, "suishenma_scan_records_stored"))
        assert down.has(f"{SIGNING}_count") and down.has("suishenma_codes_minted_total")  # the counters stay
    # PostgreSQL: the storage tries a fresh connection at most once a second, so it comes back within a few
    _eventually(lambda: scrape(issuer).value("suishenma_issuer_database_up") == 1, "the database to answer again")
    assert all(scrape(issuer).has(name) for name in AUDIT_GAUGES)


def test_audit_gauges_count_rows_no_checkpoint_covers_and_their_age_until_the_next_checkpoint(
    issuer: TestClient, keys: dict[str, str], clock: Clock
) -> None:
    anchor = ctx_of(issuer).service.anchor
    anchor.write(int(clock()), keep_lease=True)  # everything covered
    covered = scrape(issuer)
    assert covered.value("suishenma_issuer_audit_unanchored_rows") == 0
    assert covered.value("suishenma_issuer_audit_lag_seconds") == 0
    assert covered.value("suishenma_issuer_audit_checkpoint_timestamp_seconds") <= clock()

    written_at = clock.t
    enrol(issuer, keys["enrol"])  # audited: one row each
    clock.t += 10
    enrol(issuer, keys["enrol"])
    clock.t += 32
    behind = scrape(issuer)
    assert behind.value("suishenma_issuer_audit_unanchored_rows") == 2
    assert behind.value("suishenma_issuer_audit_lag_seconds") == clock.t - written_at == 42  # the oldest row's age

    checkpoint = anchor.write(int(clock()), keep_lease=True)
    assert checkpoint is not None and checkpoint.issued_at == clock.t
    caught_up = scrape(issuer)
    assert caught_up.value("suishenma_issuer_audit_unanchored_rows") == 0
    assert caught_up.value("suishenma_issuer_audit_lag_seconds") == 0
    assert caught_up.value("suishenma_issuer_audit_checkpoint_timestamp_seconds") == clock.t


def test_every_family_has_help_and_type_and_large_counters_keep_every_digit() -> None:
    metrics = Metrics()
    metrics.inc("suishenma_codes_minted_total", 'type="dynamic"', 12_345_678)
    metrics.inc("suishenma_internal_errors_total")
    metrics.observe("mint_code", 503, 0.002)
    text = metrics.render()
    exposition = parse(text)  # fails on any sample whose family has no HELP or TYPE line
    assert exposition.value("suishenma_codes_minted_total", type="dynamic") == 12_345_678
    assert 'suishenma_codes_minted_total{type="dynamic"} 12345678\n' in text
    assert exposition.value("suishenma_internal_errors_total") == 1
    assert exposition.value("suishenma_http_errors_total", endpoint="mint_code") == 1
    assert exposition.types["suishenma_http_request_seconds"] == "histogram"


def _scraper(scan_log_count: Callable[[], int], spawn: Callable[[Callable[[], None]], None] | None = None) -> Scraper:
    health = SimpleNamespace(check=lambda: SimpleNamespace(ok=True))
    storage = SimpleNamespace(scan_log_count=scan_log_count, anchoring=lambda issuer: Anchoring(0, 0, None, None))
    if spawn is None:
        return Scraper(health, storage, "SH")  # type: ignore[arg-type]
    return Scraper(health, storage, "SH", spawn=spawn)  # type: ignore[arg-type]


def test_the_scan_log_is_counted_at_most_every_five_minutes_and_never_during_a_scrape() -> None:
    """A city's scan log holds hundreds of millions of rows: scrapes every 15 s must not count it each time,
    nor wait for a count (it can outlast the scrape timeout)."""
    counts: list[int] = []
    jobs: list[Callable[[], None]] = []  # counts started, run when the test says

    def scan_log_count() -> int:
        counts.append(1)
        return 1000 + len(counts)

    def run() -> None:
        assert len(jobs) == 1
        jobs.pop()()

    scraper = _scraper(scan_log_count, spawn=jobs.append)
    assert scraper.gauges(NOW).scan_records_stored is None  # not counted yet: the gauge is left out
    assert counts == [] and len(jobs) == 1  # the scrape started a count and did not run it
    assert scraper.gauges(NOW + 1).scan_records_stored is None and len(jobs) == 1  # one count at a time
    run()
    assert scraper.gauges(NOW + 2).scan_records_stored == 1001
    assert scraper.gauges(NOW + 299).scan_records_stored == 1001 and not jobs and len(counts) == 1
    assert scraper.gauges(NOW + 300).scan_records_stored == 1001  # the last count, while the next one runs
    run()
    assert scraper.gauges(NOW + 301).scan_records_stored == 1002 and not jobs
    assert scraper.gauges(NOW + 10).scan_records_stored == 1002  # a clock set back counts again
    run()
    assert scraper.gauges(NOW + 11).scan_records_stored == 1003 and not jobs


def test_a_slow_or_failing_scan_log_count_never_holds_up_or_fails_a_scrape() -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    answers: list[int | Exception] = [7, RuntimeError("canceling statement due to statement timeout")]

    def scan_log_count() -> int:
        started.set()
        release.wait(10)  # a count on the scrape path would hold the first scrape this long
        finished.set()
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    scraper = _scraper(scan_log_count)  # real background threads
    assert scraper.gauges(NOW).scan_records_stored is None
    assert not finished.is_set()  # the scrape answered while the count was still running
    assert started.wait(10)
    release.set()
    _eventually(lambda: scraper.gauges(NOW + 1).scan_records_stored == 7, "the count to finish")
    started.clear()
    assert scraper.gauges(NOW + 300).scan_records_stored == 7
    assert started.wait(10)
    _eventually(lambda: not scraper.scan_records.running, "the failed count to end")
    gauges = scraper.gauges(NOW + 301)
    assert gauges.database_up and gauges.scan_records_stored == 7  # the last count stays
