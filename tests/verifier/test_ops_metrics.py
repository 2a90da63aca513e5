"""verifier/ops_metrics.py: the families the local service and the kiosk export, what each one means, and the
service's /metrics built on it."""

from __future__ import annotations

import re
import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient

from verifier import Decision, SyncReason, VerdictReason, Verifier
from verifier.local_service import create_app
from verifier.ops_metrics import SyncFailures, VerdictCounters, family, list_gauges, render
from verifier.sync import SyncReport
from verifier.trust_state import TRUST, status_name

from .conftest import MakeVerifier
from .sim import IssuerSim

DAY = 86400
# The verifier families of the metrics contract (README: metrics), without the suishenma_verifier_ prefix.
FAMILIES = {
    "verdicts_total": "counter",
    "list_age_seconds": "gauge",
    "list_max_age_seconds": "gauge",
    "clock_skew_seconds": "gauge",
    "clock_wrong": "gauge",
    "stale": "gauge",
    "offline": "gauge",
    "sync_failures_total": "counter",
    "last_sync_success_timestamp_seconds": "gauge",
    "scan_log_pending_records": "gauge",
}
SAMPLE = re.compile(r'^(suishenma_verifier_[a-z_]+)(?:\{((?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\})? (\S+)$')


def parse(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """The declared types by family, and every sample (``name{labels}`` -> value) of a text exposition;
    fails on a sample of an undeclared family, a family without HELP, or a line that is neither."""
    types: dict[str, str] = {}
    helped: set[str] = set()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in types, f"{name} declared twice"
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            assert m[1] in types and m[1] in helped, f"{m[1]} has no TYPE or HELP before its samples"
            samples[f"{m[1]}{{{m[2]}}}" if m[2] else m[1]] = float(m[3])
    return types, samples


def test_render_exports_every_family_of_the_contract(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    counters = VerdictCounters()
    for text in (sim.code(), "not a code"):
        verdict = v.verify(text, now=sim.now)
        counters.verdict(verdict.decision, verdict.reason, verdict.elapsed_ms / 1000)
    types, samples = parse(render(v, counters, SyncFailures(), now=sim.now + 60))
    assert types == {f"suishenma_verifier_{name}": kind for name, kind in FAMILIES.items()}
    assert samples['suishenma_verifier_verdicts_total{decision="ALLOW",reason="ok"}'] == 1
    assert samples['suishenma_verifier_verdicts_total{decision="DENY",reason="not_a_code"}'] == 1
    assert samples['suishenma_verifier_list_age_seconds{kind="trust",list="trust"}'] == 60
    assert samples['suishenma_verifier_list_age_seconds{kind="status",list="SH"}'] == 60
    assert samples["suishenma_verifier_stale"] == 0 and samples["suishenma_verifier_offline"] == 0
    assert samples["suishenma_verifier_clock_wrong"] == 0
    assert abs(samples["suishenma_verifier_clock_skew_seconds"]) <= 2  # measured from the Date header
    assert samples["suishenma_verifier_last_sync_success_timestamp_seconds"] == sim.now
    # two verdicts logged, none uploaded (no upload key)
    assert samples["suishenma_verifier_scan_log_pending_records"] == 2


def test_a_verifier_never_synced_reports_no_lists_and_zero_for_the_last_success(
    make_verifier: MakeVerifier, sim: IssuerSim
) -> None:
    types, samples = parse(render(make_verifier(sync=False), VerdictCounters(), SyncFailures(), now=sim.now))
    assert "suishenma_verifier_list_max_age_seconds" in types and not any(
        s.startswith("suishenma_verifier_list_") for s in samples
    )
    assert samples["suishenma_verifier_last_sync_success_timestamp_seconds"] == 0
    assert samples["suishenma_verifier_stale"] == 1 and samples["suishenma_verifier_offline"] == 1
    assert "suishenma_verifier_clock_skew_seconds" not in samples  # never measured: no sample, not a 0


def _boundaries(v: Verifier, now: int) -> dict[str, tuple[int, bool, bool]]:
    """For every list: its max age, and whether the verifier's policy (the one check every refusal for stale
    lists and ``health`` make) calls it stale at exactly that age and one second later."""
    out = {}
    for g in list_gauges(v, now):
        held = v.state.held[TRUST if g.kind == "trust" else status_name(g.list)]
        at = held.checked_at + g.max_age_s
        stale = (v.policy.is_stale(held, at), v.policy.is_stale(held, at + 1))
        if g.kind == "status":  # as health reports it
            assert stale == (
                v.health(now=at).status_lists[g.list].stale,
                v.health(now=at + 1).status_lists[g.list].stale,
            )
        out[f"{g.kind}:{g.list}"] = (g.max_age_s, *stale)
    return out


def test_list_max_age_is_the_age_at_which_the_verifier_stops_trusting_the_list(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    """The scenario's limit (venue 3 days, transit 6 hours), or the list's expiry when that comes sooner: one
    second past the gauge the verifier itself calls the list stale, at the gauge it does not yet."""
    venue = make_verifier(name="venue")
    assert _boundaries(venue, sim.now) == {"trust:trust": (3 * DAY, False, True), "status:SH": (3 * DAY, False, True)}
    transit = make_verifier("transit", name="transit")
    assert _boundaries(transit, sim.now) == {
        "trust:trust": (6 * 3600, False, True),
        "status:SH": (6 * 3600, False, True),
    }
    sim.publish_status("SH", 2, valid_for=DAY)  # expires before the venue's 3 days are up
    venue.sync(now=sim.now)
    assert _boundaries(venue, sim.now)["status:SH"] == (DAY - 1, False, True)
    text = render(venue, VerdictCounters(), SyncFailures(), now=sim.now)
    assert f'suishenma_verifier_list_max_age_seconds{{kind="status",list="SH"}} {DAY - 1}\n' in text
    assert f'suishenma_verifier_list_max_age_seconds{{kind="trust",list="trust"}} {3 * DAY}\n' in text


def test_sync_failures_are_counted_per_problem_by_typed_reason(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    failures = SyncFailures()
    failures.count(v.sync(now=sim.now))  # a sync without problems counts nothing
    sim.routes["/status/SH"].mode = "error"
    report = v.sync(now=sim.now)
    assert report.reasons == [SyncReason.NETWORK]
    failures.count(report)
    failures.count(report)
    counts = failures.snapshot()
    assert counts[SyncReason.NETWORK] == 2 and set(counts) == set(SyncReason)
    assert sum(counts.values()) == 2
    _, samples = parse(render(v, VerdictCounters(), failures, now=sim.now))
    assert samples['suishenma_verifier_sync_failures_total{reason="network"}'] == 2
    assert samples['suishenma_verifier_sync_failures_total{reason="list_rollback"}'] == 0  # present from the start
    assert samples["suishenma_verifier_offline"] == 1


def test_verdict_counters_lose_nothing_under_concurrent_threads() -> None:
    counters = VerdictCounters()

    def count() -> None:
        for _ in range(2000):
            counters.verdict(Decision.ALLOW, VerdictReason.OK, 0.001)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdicts, seconds = counters.snapshot()
    assert verdicts == {("ALLOW", "ok"): 16000} and abs(seconds - 16.0) < 1e-6


def test_label_values_are_escaped() -> None:
    lines = family("x", "gauge", "h", [({"list": 'a"b\\c\nd'}, 1.5)])
    assert lines[-1] == 'suishenma_verifier_x{list="a\\"b\\\\c\\nd"} 1.5'


def test_service_metrics_use_the_shared_families_and_count_background_sync_failures(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    sim.routes["/status/SH"].mode = "error"
    with TestClient(create_app(v, sync_interval=3600, clock=lambda: sim.now)) as c:
        c.post("/v1/verify", json={"code": sim.code()})
        deadline = time.monotonic() + 20  # bounds a hang only: the sync at start fails at once
        while 'sync_failures_total{reason="network"} 1' not in (text := c.get("/metrics").text):
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
    types, samples = parse(text)
    assert {f"suishenma_verifier_{name}" for name in FAMILIES} <= set(types)
    assert types["suishenma_verifier_verify_seconds_total"] == "counter"
    assert types["suishenma_verifier_requests_rejected_total"] == "counter"
    assert samples['suishenma_verifier_verdicts_total{decision="ALLOW",reason="ok"}'] == 1
    assert samples["suishenma_verifier_scan_log_pending_records"] == 1
    assert "pending_uploads" not in text


def test_a_sync_that_raises_counts_as_internal_and_reads_offline(
    sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync that crashes (a locked database, a bug) leaves the verifier's record of the sync before it: the
    metrics must still say the latest sync failed, or the sync-failing alert never fires."""
    v = make_verifier()
    assert v.sync(now=sim.now).ok
    real_sync = v.sync

    def crash(now: float | None = None) -> SyncReport:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(v, "sync", crash)
    with TestClient(create_app(v, sync_interval=3600, clock=lambda: sim.now)) as c:
        deadline = time.monotonic() + 20  # bounds a hang only: the sync at start raises at once
        while 'sync_failures_total{reason="internal"} 1' not in (text := c.get("/metrics").text):
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
    _, samples = parse(text)
    assert samples["suishenma_verifier_offline"] == 1
    assert sum(n for k, n in samples.items() if "sync_failures_total" in k) == 1
    failures = SyncFailures()
    failures.crashed()
    failures.count(real_sync(now=sim.now))  # the next sync reports, and succeeds
    _, samples = parse(render(v, VerdictCounters(), failures, now=sim.now))
    assert samples["suishenma_verifier_offline"] == 0
    assert samples['suishenma_verifier_sync_failures_total{reason="internal"}'] == 1
