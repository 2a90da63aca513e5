"""The alert rules and the dashboard in ops/, checked by promtool and against a real Prometheus scraping a real
issuer and real verifier services.

The live test loads ops/alerts.yml with one documented change, every ``for:`` rewritten to ``0s``, so that an
alert fires at the first evaluation that sees its condition instead of minutes later; the expressions, labels
and annotations are the file's own. The ``for:`` durations themselves are checked by the promtool unit tests
(ops/alerts_test.yml).

The verifier alerts have real causes too: a proxy between a verifier service and the issuer
(testing/skew_proxy.py) moves the issuer's ``Date`` header a minute ahead (clock skew, as a slow local clock
would show), answers 503 to scan-log uploads while the gate keeps verifying (a growing backlog), or stops
(list sync failing).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from suishenma import load_verification_key
from testing.live_issuer import LiveIssuer, create_api_key, free_port, init_dir, terminate
from testing.prometheus import LivePrometheus, prometheus_binary, promtool_binary
from testing.skew_proxy import SkewProxy
from verifier import Verifier
from verifier.cli import main as verifier_cli

from .pg_server import PgServer

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"
RULES = OPS / "alerts.yml"
DASHBOARD = OPS / "grafana-dashboard.json"
ALERTS = {
    "SuishenmaIssuerDown",
    "SuishenmaIssuerCannotSign",
    "SuishenmaIssuerDatabaseUnavailable",
    "SuishenmaIssuerHighErrorRatio",
    "SuishenmaIssuerAuditCheckpointLagging",
    "SuishenmaTargetDown",
    "SuishenmaVerifierListAgeHigh",
    "SuishenmaVerifierStale",
    "SuishenmaVerifierClockSkew",
    "SuishenmaVerifierSyncFailing",
    "SuishenmaVerifierScanLogBacklogGrowing",
}
ISSUER_JOB, VERIFIER_JOB = "suishenma-issuer", "suishenma-verifier"
DEADLINE = 60.0
T = TypeVar("T")


def _missing(what: str) -> None:
    """Skip, except in CI, which installs Debian's prometheus (scripts/apt-packages.txt): there it fails."""
    message = f"{what} is not installed (scripts/system-deps installs Debian's prometheus package)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _promtool() -> Path:
    found = promtool_binary()
    if found is None:
        _missing("promtool")
    assert found is not None
    return found


# --- static checks ----------------------------------------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    r = subprocess.run([_promtool(), "check", "rules", RULES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in r.stdout


def test_rules_unit_tests_pass_promtool() -> None:
    """Each alert fires when its ``for:`` has elapsed, not a minute before, and never for the healthy series."""
    r = subprocess.run([_promtool(), "test", "rules", OPS / "alerts_test.yml"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_rules_unit_tests_fail_when_a_for_duration_is_shortened(tmp_path: Path) -> None:
    """The unit tests would catch an alert that fires early: the same tests on rules with one ``for:`` cut."""
    shortened = RULES.read_text().replace("for: 2m", "for: 1m", 1)
    assert shortened != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(shortened)
    shutil.copy(OPS / "alerts_test.yml", tmp_path / "alerts_test.yml")
    r = subprocess.run([_promtool(), "test", "rules", tmp_path / "alerts_test.yml"], capture_output=True, text=True)
    assert r.returncode != 0 and "SuishenmaIssuerDown, time: 3m" in r.stdout + r.stderr


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _targets() -> list[tuple[str, str]]:
    """(panel title, expression) of every query in the dashboard."""
    return [(p["title"], t["expr"]) for p in _dashboard()["panels"] if p["type"] != "row" for t in p["targets"]]


def test_dashboard_is_an_importable_grafana_dashboard_with_a_query_in_every_panel() -> None:
    d = _dashboard()
    assert d["schemaVersion"] >= 39 and d["uid"] and d["title"]
    assert [(i["name"], i["type"], i["pluginId"]) for i in d["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    panels = d["panels"]
    assert [p["title"] for p in panels if p["type"] == "row"] == ["Issuer", "Verifiers and kiosks"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"panel {p['title']!r} overlaps another"
        cells |= area
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    for v in d["templating"]["list"]:
        assert v["datasource"]["uid"] == "${DS_PROMETHEUS}"
    titles = " ".join(p["title"] for p in panels)
    for shown in ("minted", "Signing latency", "5xx", "Can sign", "Database up", "Audit", "Verdicts", "List age"):
        assert shown in titles
    for shown in ("Clock skew", "Sync failures", "Scan-log backlog", "Stale", "Offline"):
        assert shown in titles


def _as_promql(expr: str) -> str:
    """A dashboard query as Grafana sends it: its variables replaced (``$__rate_interval`` by a duration, the
    job selections by "All", whose value is ``.+``)."""
    return expr.replace("$__rate_interval", "1m").replace("$issuer_job", ".+").replace("$verifier_job", ".+")


# --- the live test ----------------------------------------------------------------------------------------


def _zero_for(rules: str) -> str:
    """The rules with every ``for:`` set to 0s, nothing else changed (asserted: one per alert)."""
    rewritten, count = re.subn(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", rules)
    assert count == len(ALERTS)
    return rewritten


class VerifierService:
    """``suishenma-verifier serve`` in a child process."""

    def __init__(self, state: Path, kiosk_key: str, *args: str) -> None:
        self.state, self.args, self.port = state, args, free_port()
        self.env = {**os.environ, "SUISHENMA_KIOSK_API_KEY": kiosk_key}
        self.log = state.parent / f"{state.name}-serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> VerifierService:
        cmd = [sys.executable, "-m", "verifier", "serve", "--state", str(self.state), "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*cmd, *self.args], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        _until(lambda: self._answers(), f"the verifier service on {self.address} to start; see {self.log}", 20)
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"verifier service exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://{self.address}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        terminate(self.proc, 10)


def _until(check: Callable[[], T], what: str | Callable[[], str], deadline: float = DEADLINE) -> T:
    """Poll ``check`` until it returns something true; fail naming ``what`` (a callable: as it is by then)
    after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            pytest.fail(f"waited {deadline:g} s for {what() if callable(what) else what}")
        time.sleep(0.25)


@pytest.fixture()
def pg() -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own: the test stops it, which the one shared by the whole run must not be."""
    server = PgServer()
    server.start()
    yield server
    server.close()


@pytest.fixture()
def prometheus_ready() -> None:
    if prometheus_binary() is None:
        _missing("prometheus")


def _evaluations(prom: LivePrometheus, n: int) -> None:
    """Wait until every rule group has been evaluated ``n`` more times."""

    def stamps() -> list[str]:
        return [g["lastEvaluation"] for g in prom.api("rules")["data"]["groups"]]

    def newer(before: list[str]) -> bool:
        return all(a != b for a, b in zip(stamps(), before, strict=True))

    for _ in range(n):
        _until(functools.partial(newer, stamps()), "a rule evaluation", 10)


def _value(prom: LivePrometheus, expr: str) -> float | None:
    result = prom.query(expr)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _fires(
    prom: LivePrometheus, expected: set[tuple[str, str]], allowed: frozenset[tuple[str, str]] = frozenset()
) -> None:
    """Wait until ``expected`` fire, then check, over two more evaluations, that nothing else does but
    ``allowed`` (alerts that the same cause may or may not raise, depending on timing)."""
    _until(lambda: expected <= prom.firing(), lambda: f"{sorted(expected)} to fire (firing: {sorted(prom.firing())})")
    for _ in range(2):
        _evaluations(prom, 1)
        firing = prom.firing()
        assert expected <= firing <= expected | allowed, f"expected {sorted(expected)}, firing {sorted(firing)}"


def _quiet(prom: LivePrometheus, what: str) -> None:
    _until(lambda: not prom.alerts(), lambda: f"every alert to resolve {what} (firing: {sorted(prom.firing())})")


def test_alerts_fire_on_a_real_issuer_and_verifiers_and_only_then(
    tmp_path: Path, pg: PgServer, prometheus_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An issuer on PostgreSQL: stopping the server makes its database really unavailable (and enrolment 503).
    monkeypatch.setenv("SUISHENMA_ISSUER_DATABASE_URL", pg.create_database())
    home = tmp_path / "issuer"
    with contextlib.redirect_stdout(io.StringIO()):
        init_dir(home)
    ops_key = create_api_key(home, "ops", "enrol,mint")
    kiosk_keys = {k: create_api_key(home, k, "kiosk") for k in ("gate-a", "gate-b")}
    issuer = LiveIssuer(home).start()
    services: list[VerifierService] = []
    prom: LivePrometheus | None = None
    try:
        auth = {"Authorization": f"Bearer {ops_key}"}
        with httpx.Client(base_url=issuer.url, headers=auth) as c:
            s = c.post("/v1/subjects", json={"name": "王小明", "id_number": "310101200001011234"}).json()["subject"]
            code = c.post(f"/v1/subjects/{s}/codes", json={"scenario": "venue"}).json()["code"]
        root = load_verification_key(home / "keys" / "root.pub")
        monkeypatch.setenv("SUISHENMA_KIOSK_API_KEY", kiosk_keys["gate-a"])
        with Verifier.init(tmp_path / "gate-a", issuer.url, root, "venue", "gate-a") as v:
            assert v.sync().ok
        gate_a = VerifierService(tmp_path / "gate-a", kiosk_keys["gate-a"]).start()  # syncs again, every 300 s
        services.append(gate_a)
        verdict = httpx.post(f"http://{gate_a.address}/v1/verify", json={"code": code}).json()
        assert verdict["decision"] == "ALLOW", verdict

        targets = {ISSUER_JOB: [f"127.0.0.1:{issuer.port}"], VERIFIER_JOB: [gate_a.address]}
        prom = LivePrometheus(targets, _zero_for(RULES.read_text())).start()
        i, a = f"127.0.0.1:{issuer.port}", gate_a.address

        # Healthy: both targets scraped with the contract's families, gate A synced; then no alert at all.
        _until(lambda: _value(prom, f'min(up{{instance=~"{i}|{a}"}})') == 1, "both targets to be scraped")
        _until(lambda: _value(prom, "suishenma_issuer_can_sign") == 1, "suishenma_issuer_can_sign 1 on the issuer")
        _until(lambda: _value(prom, "suishenma_issuer_database_up") == 1, "suishenma_issuer_database_up 1")
        _until(lambda: _value(prom, "suishenma_verifier_offline") == 0, "gate A to report a successful sync")
        _until(
            lambda: _value(prom, "count(suishenma_verifier_list_max_age_seconds)") == 2,
            "gate A's two lists (trust, status SH) with their maximum ages",
        )
        _evaluations(prom, 3)
        assert prom.alerts() == [], "a healthy issuer and verifier raise no alert"

        # The issuer cannot sign: its signing key file is gone.
        (key_file,) = (home / "keys").glob("issuer-*.key")
        moved = key_file.rename(home / "elsewhere.key")
        _fires(prom, {("SuishenmaIssuerCannotSign", i)})
        moved.rename(key_file)
        _quiet(prom, "once the key file is back")

        # A stale list: gate B's scenario trusts a list for 4 s without confirmation, and it does not sync.
        policy = tmp_path / "short.toml"
        policy.write_text('extends = "venue"\nname = "short-lists"\nmax_list_age_s = 4\n')
        monkeypatch.setenv("SUISHENMA_KIOSK_API_KEY", kiosk_keys["gate-b"])
        with Verifier.init(tmp_path / "gate-b", issuer.url, root, policy, "gate-b") as v:
            assert v.sync().ok
        gate_b = VerifierService(tmp_path / "gate-b", kiosk_keys["gate-b"], "--no-sync").start()
        services.append(gate_b)
        b = gate_b.address
        prom.set_targets({ISSUER_JOB: [i], VERIFIER_JOB: [a, b]})
        _fires(prom, {("SuishenmaVerifierListAgeHigh", b), ("SuishenmaVerifierStale", b)})
        ages = prom.query(f'suishenma_verifier_list_age_seconds{{instance="{b}"}}')["data"]["result"]
        assert {(r["metric"]["kind"], r["metric"]["list"]) for r in ages} == {("trust", "trust"), ("status", "SH")}

        # A target down: gate B stops. Its list series end with it, so only the target alert remains.
        gate_b.stop()
        _until(
            lambda: prom.firing() == {("SuishenmaTargetDown", b)},
            lambda: f"only SuishenmaTargetDown for gate B (firing: {sorted(prom.firing())})",
        )
        _fires(prom, {("SuishenmaTargetDown", b)})
        prom.set_targets({ISSUER_JOB: [i], VERIFIER_JOB: [a]})
        _quiet(prom, "once gate B is no longer a target")

        # The database goes away: database_up 0 at every scrape, and enrolment fails with 503, a real 5xx ratio.
        pg.stop()
        _until(lambda: _value(prom, "suishenma_issuer_database_up") == 0, "suishenma_issuer_database_up 0")
        with httpx.Client(base_url=issuer.url, headers=auth, timeout=30) as c:

            def enrol(n: int) -> int:
                person = {"name": "李四", "id_number": f"3101012000{n:04d}1234"}
                return c.post("/v1/subjects", json=person).status_code

            # A counter's first sample gives rate() nothing to go on: let Prometheus see the error series
            # before the burst, as it would in production, where a first error is rarely alone.
            assert {enrol(n) for n in range(3)} == {503}
            errors = f'sum(suishenma_http_errors_total{{instance="{i}"}})'  # one series per endpoint, maybe at 0
            _until(lambda: _value(prom, errors), "the first 5xx scraped")
            assert {enrol(n) for n in range(3, 123)} == {503}
        _fires(
            prom,
            {("SuishenmaIssuerDatabaseUnavailable", i), ("SuishenmaIssuerHighErrorRatio", i)},
            # the signing check reads the current key's record from the database: it may fail with it
            allowed=frozenset({("SuishenmaIssuerCannotSign", i)}),
        )
        ratio = next(x for x in prom.alerts() if x["labels"]["alertname"] == "SuishenmaIssuerHighErrorRatio")
        assert "of responses are 5xx" in ratio["annotations"]["summary"]

        # Every dashboard query is valid PromQL, and every metric name the rules and the dashboard use was
        # exported by the issuer or a verifier during this test (a renamed family would leave a panel empty).
        for title, expr in _targets():
            answer = prom.query(_as_promql(expr))
            assert answer["status"] == "success", f"panel {title!r}: {answer.get('error')}"
        exported = set(prom.api("label/__name__/values")["data"])
        used = set(re.findall(r"\bsuishenma_\w+", RULES.read_text() + DASHBOARD.read_text()))
        assert {n for n in used if n not in exported and f"{n}_bucket" not in exported} == set(), "never exported"
    finally:
        if prom is not None:
            prom.close()
        for service in services:
            service.stop()
        issuer.stop()


def test_verifier_alerts_fire_on_real_causes_on_the_path_to_the_issuer(tmp_path: Path, prometheus_ready: None) -> None:
    """Clock skew, a growing scan-log backlog and a failing list sync, each caused for real on a verifier service
    of its own that reaches the issuer through a proxy (testing/skew_proxy.py); each alert fires once its cause
    is there and not before, nothing else fires meanwhile, and each resolves once its cause is gone."""
    home = tmp_path / "issuer"
    with contextlib.redirect_stdout(io.StringIO()):
        init_dir(home)
    ops_key = create_api_key(home, "ops", "enrol,mint")
    kiosk_key = create_api_key(home, "gate-backlog", "kiosk")
    issuer = LiveIssuer(home).start()
    gates = ("gate-clock", "gate-backlog", "gate-sync")
    proxies = {g: SkewProxy(issuer.url) for g in gates}
    services: list[VerifierService] = []
    prom: LivePrometheus | None = None
    try:
        for gate, proxy in proxies.items():
            proxy.start()
            init = ["init", "--issuer", proxy.url, "--root", str(home / "keys" / "root.pub"), "--scenario", "venue"]
            with contextlib.redirect_stdout(io.StringIO()):
                assert verifier_cli([*init, "--state", str(tmp_path / gate), "--kiosk-id", gate]) == 0
            # Only the backlog's gate uploads (the others verify nothing); each syncs every second, as soon as
            # it starts, through its proxy.
            key = kiosk_key if gate == "gate-backlog" else ""
            services.append(VerifierService(tmp_path / gate, key, "--sync-interval", "1").start())
        c, b, s = (v.address for v in services)
        i = f"127.0.0.1:{issuer.port}"
        prom = LivePrometheus({ISSUER_JOB: [i], VERIFIER_JOB: [c, b, s]}, _zero_for(RULES.read_text())).start()

        # Healthy: every gate synced through its proxy and measured its clock close to the issuer's.
        _until(lambda: _value(prom, "count(up == 1)") == 4, "the issuer and the three gates to be scraped")
        _until(lambda: _value(prom, "count(suishenma_verifier_offline == 0)") == 3, "every gate to sync")
        _until(
            lambda: _value(prom, "count(abs(suishenma_verifier_clock_skew_seconds) < 5)") == 3,
            "every gate to measure its clock against the issuer's Date header",
        )
        _evaluations(prom, 3)
        assert prom.alerts() == [], "healthy gates raise no alert"

        # Clock skew: the issuer's Date header arrives a minute ahead, as it would on a gate whose clock is a
        # minute slow. No list carries a signed time in the future, so the Date header is the whole evidence.
        proxies["gate-clock"].date_offset_s = 60.0
        _fires(prom, {("SuishenmaVerifierClockSkew", c)})
        skew = _value(prom, f'suishenma_verifier_clock_skew_seconds{{instance="{c}"}}')
        assert skew is not None and -62 < skew < -58, f"this clock reads as a minute behind, not {skew}"
        (alert,) = prom.alerts()
        about_a_minute = r"(5[89](\.\d+)?s|1m [0-2]s)"  # the Date header has whole seconds
        summary = alert["annotations"]["summary"]
        assert re.fullmatch(rf"{re.escape(c)}: clock is {about_a_minute} off the issuers'", summary), summary
        proxies["gate-clock"].date_offset_s = 0.0
        _quiet(prom, "once the Date header is right again")

        # Scan-log backlog: the issuer's front end answers 503 to every upload of gate B while people keep
        # passing it. Under the floor of 1,000 records nothing fires; past it, the growing backlog does.
        proxies["gate-backlog"].refuse.add(("POST", "/v1/scan-logs"))
        auth = {"Authorization": f"Bearer {ops_key}"}
        with httpx.Client(base_url=issuer.url, headers=auth) as cl:
            subject = cl.post("/v1/subjects", json={"name": "王小明", "id_number": "310101200001011234"}).json()
            code = cl.post(f"/v1/subjects/{subject['subject']}/codes", json={"scenario": "venue"}).json()["code"]
        with httpx.Client(base_url=f"http://{b}", limits=httpx.Limits(max_connections=8)) as gate_b:

            def scan(_: int) -> str:
                decision: str = gate_b.post("/v1/verify", json={"code": code}).json()["decision"]
                return decision

            def feed(n: int) -> None:
                with ThreadPoolExecutor(8) as pool:
                    assert set(pool.map(scan, range(n))) == {"ALLOW"}

            pending = f'suishenma_verifier_scan_log_pending_records{{instance="{b}"}}'
            feed(600)
            _until(lambda: _value(prom, pending) == 600, "gate B's 600 records to be pending")
            refused = f'suishenma_verifier_sync_failures_total{{instance="{b}",reason="upload_failed"}}'
            _until(lambda: _value(prom, refused), "an upload of gate B to be refused")
            _evaluations(prom, 2)
            assert prom.alerts() == [], "600 records waiting are under the floor"
            feed(500)
        _fires(prom, {("SuishenmaVerifierScanLogBacklogGrowing", b)})
        (alert,) = prom.alerts()
        assert alert["annotations"]["summary"] == f"{b}: 1.1k scan-log records wait to upload and the backlog grows"
        assert _value(prom, f'suishenma_verifier_offline{{instance="{b}"}}') == 0, "its lists still sync"
        proxies["gate-backlog"].refuse.clear()
        _until(lambda: _value(prom, pending) == 0, "gate B to upload its backlog")
        _quiet(prom, "once gate B's backlog is uploaded")

        # Sync failing: gate S's path to the issuer is gone (connections refused), sync after sync.
        proxies["gate-sync"].stop()
        _fires(prom, {("SuishenmaVerifierSyncFailing", s)})
        failed = f'suishenma_verifier_sync_failures_total{{instance="{s}",reason="no_issuer_answered"}}'
        assert (_value(prom, failed) or 0) >= 1, "the failures counted are the issuer not answering"
        proxies["gate-sync"].start()
        _quiet(prom, "once gate S syncs again")
    finally:
        if prom is not None:
            prom.close()
        for service in services:
            service.stop()
        for proxy in proxies.values():
            proxy.stop()
        issuer.stop()
