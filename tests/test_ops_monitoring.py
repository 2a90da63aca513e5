"""The alert rules and the dashboard in ops/, checked by promtool and against a real Prometheus scraping a real
issuer and real verifier services.

The live test loads ops/alerts.yml with one documented change, every ``for:`` rewritten to ``0s``, so that an
alert fires at the first evaluation that sees its condition instead of minutes later; the expressions, labels
and annotations are the file's own. The ``for:`` durations themselves are checked by the promtool unit tests
(ops/alerts_test.yml), which also cover what cannot be caused on a live service without a test hook: clock
skew (the issuer's clock would have to be wrong), a growing scan-log backlog (an hour of growth) and a sync
failing for 30 minutes.
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
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from suishenma import load_verification_key
from testing.live_issuer import LiveIssuer, create_api_key, free_port, init_dir
from testing.prometheus import LivePrometheus, prometheus_binary, promtool_binary
from verifier import Verifier

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
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
            _until(lambda: _value(prom, f'suishenma_http_errors_total{{instance="{i}"}}'), "the first 5xx scraped")
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
