"""Scenario policies, custom TOML policies, the durable scan log and its upload, and concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suishenma import Status, UsageError
from verifier import BUILTIN, Decision, SyncReason, VerdictReason, policy_from_toml

from .conftest import MakeVerifier
from .sim import DAY, IssuerSim


def test_offline_codes_checked_against_the_status_list(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    sim.publish_status("SH", 2, revoked=[3], suspended=[4])
    v = make_verifier("venue")
    assert v.verify(sim.code(index=2), now=sim.now).decision is Decision.ALLOW
    assert v.verify(sim.code(index=3), now=sim.now).reason is VerdictReason.REVOKED
    assert v.verify(sim.code(index=4), now=sim.now).reason is VerdictReason.SUSPENDED
    assert v.verify(sim.code(index=5000), now=sim.now).reason is VerdictReason.REVOKED  # beyond the list
    assert v.verify(sim.code(index=2), now=sim.now + 8 * DAY).reason is VerdictReason.STALE_LISTS  # list expired


def test_transit_requires_a_fresh_blacklist_and_a_young_code(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("transit")
    # unexpired (a 10-minute code) but issued 200 s ago: only the transit age limit refuses it
    old = v.verify(sim.code(at=sim.now - 200, ttl=600), now=sim.now)
    assert old.decision is Decision.DENY and old.reason is VerdictReason.TOO_OLD
    code = sim.code(at=sim.now + 7 * 3600)
    verdict = v.verify(code, now=sim.now + 7 * 3600)  # blacklist confirmed 7 h ago: stale for a gate
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.STALE_LISTS
    assert v.sync(now=sim.now + 7 * 3600).ok
    assert v.verify(code, now=sim.now + 7 * 3600).decision is Decision.ALLOW


def test_transit_without_blacklist_for_the_issuer_denies(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    del sim.routes["/status/SH"]
    v = make_verifier("transit", sync=False)
    v.sync(now=sim.now)
    assert v.verify(sim.code(), now=sim.now).reason is VerdictReason.NO_STATUS_LIST


def test_custom_policy_from_toml(sim: IssuerSim, make_verifier: MakeVerifier, tmp_path: Path) -> None:
    toml = tmp_path / "clinic.toml"
    toml.write_text(
        'extends = "hospital"\nname = "clinic"\nrequired_claims = ["masked_name"]\n'
        '[statuses]\ngreen = "ALLOW"\nyellow = "ALLOW"\nred = "REFER"\n'
        '[messages]\nstatus_red = ["请到发热门诊", "Please go to the fever clinic"]\n'
    )
    v = make_verifier(toml)
    assert v.policy.name == "clinic"
    assert v.verify(sim.code(Status.YELLOW, identity=True), now=sim.now).decision is Decision.ALLOW
    red = v.verify(sim.code(Status.RED, identity=True), now=sim.now)
    assert red.decision is Decision.REFER and red.message_zh == "请到发热门诊"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ('extends = "airport"', "policy extends unknown scenario 'airport'"),
        ("skew_s = -1", "policy value: skew_s must be a non-negative integer"),
        ('replay = "twice"', "policy value: replay must be 'off' or 'once'"),
        ("[statuses]\ngreen = 'ALLOW'", "policy value: statuses must give a decision for green, yellow and red"),
        ("colour = 1", "unknown policy keys: colour"),
        ("x =", "policy TOML: "),
    ],
)
def test_invalid_policy_rejected_with_reason(text: str, detail: str) -> None:
    with pytest.raises(UsageError) as exc:
        policy_from_toml(text)
    assert exc.value.detail.startswith(detail)


def test_policy_defaults_table_matches_builtins() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, p in BUILTIN.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| {name} "))
        assert f"{p.max_list_age_s // 3600} h" in row and p.on_stale.value in row


def test_every_verdict_is_logged_without_the_code_text(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("venue")
    code = sim.code()
    v.verify(code, now=sim.now)
    v.verify("SM1:broken", now=sim.now)
    rows = list(v.store.scans())
    assert [(r.decision, r.reason) for r in rows] == [("ALLOW", "ok"), ("DENY", "malformed")]
    assert rows[0].subject == "0102030405060708" and rows[0].issuer == "SH" and rows[0].kiosk_id == "gate-1"
    db = b"".join(p.read_bytes() for p in v.state_dir.glob("verifier.db*"))
    assert code.encode() not in db and code[10:40].encode() not in db
    assert v.health(now=sim.now).scans_today == 2


def test_scan_log_upload_is_batched_acknowledged_and_retried(
    sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUISHENMA_KIOSK_API_KEY", sim.api_key)
    v = make_verifier("venue")
    for i in range(1203):
        v.store.record(sim.now, "gate-1", "venue", "ALLOW", "ok", f"{i:016x}", "SH")
    sim.routes["/v1/scan-logs"] = type(sim.routes["/v1/trust-list"])(mode="error")
    report = v.sync(now=sim.now)
    assert not report.ok and report.uploaded == 0 and v.health(now=sim.now).pending_uploads == 1203
    del sim.routes["/v1/scan-logs"]
    report = v.sync(now=sim.now)
    assert report.ok and report.uploaded == 1203 and v.health(now=sim.now).pending_uploads == 0
    seqs = [r["seq"] for b in sim.scan_batches for r in b["records"]]  # type: ignore[attr-defined]
    assert len(sim.scan_batches) == 3 and seqs == sorted(set(seqs)) and len(seqs) == 1203
    assert "code" not in str(sim.scan_batches[0]["records"][0])  # type: ignore[index]


def test_verify_while_syncing_from_another_thread(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("venue")
    code = sim.code()
    errors: list[BaseException] = []
    stop = threading.Event()

    def syncer() -> None:
        version = 2
        while not stop.is_set():
            sim.publish_status("SH", version)
            version += 1
            try:
                v.sync(now=sim.now)
            except BaseException as exc:
                errors.append(exc)

    t = threading.Thread(target=syncer)
    t.start()
    try:
        decisions = {v.verify(code, now=sim.now).decision for _ in range(300)}
    finally:
        stop.set()
        t.join()
    assert decisions == {Decision.ALLOW} and not errors
    assert len(list(v.store.scans())) == 300


ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def test_verify_never_raises_on_arbitrary_or_mutated_text(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("venue")
    good = sim.code()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        text=st.one_of(
            st.text(max_size=400),
            st.text(alphabet=ALPHABET, max_size=300).map(lambda t: "SM1:" + t),
            st.tuples(st.integers(4, len(good) - 1), st.sampled_from(ALPHABET)).map(
                lambda m: good[: m[0]] + m[1] + good[m[0] + 1 :]
            ),
        )
    )
    def check(text: str) -> None:
        verdict = v.verify(text, now=sim.now)
        if text != good:
            assert verdict.decision is Decision.DENY and verdict.reason is not VerdictReason.OK

    check()


@pytest.mark.parametrize("mode", ["html", "ack-none", "conflict-stranger"])
def test_scan_logs_stay_pending_when_the_reply_is_not_an_acknowledgement(
    sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("SUISHENMA_KIOSK_API_KEY", sim.api_key)
    v = make_verifier("venue")
    v.verify(sim.code(), now=sim.now)
    sim.routes["/v1/scan-logs"] = type(sim.routes["/v1/trust-list"])(mode=mode)
    report = v.sync(now=sim.now)  # must not raise
    assert not report.ok and report.uploaded == 0 and "scan-log upload" in report.errors[-1]
    expected = SyncReason.UPLOAD_FAILED if mode == "html" else SyncReason.UPLOAD_NOT_ACKNOWLEDGED  # not JSON at all
    assert report.reasons == [expected]
    assert v.health(now=sim.now).pending_uploads == 1


def test_scan_record_the_issuer_holds_differently_is_kept_as_a_conflict_not_marked_uploaded(
    sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone uploaded other records under this kiosk's numbers first: the kiosk keeps its own."""
    monkeypatch.setenv("SUISHENMA_KIOSK_API_KEY", sim.api_key)
    v = make_verifier("venue")
    for _ in range(3):
        v.verify(sim.code(), now=sim.now)
    sim.routes["/v1/scan-logs"] = type(sim.routes["/v1/trust-list"])(mode="conflict-first")
    report = v.sync(now=sim.now)
    assert report.uploaded == 2 and not report.ok
    assert report.reasons[-1] is SyncReason.UPLOAD_CONFLICTS
    assert "holds other records under 1 of this kiosk's sequence numbers (1)" in report.errors[-1]
    rows = list(v.store.scans())
    assert [(r.uploaded, r.conflict) for r in rows] == [(False, True), (True, False), (True, False)]
    h = v.health(now=sim.now)
    assert h.pending_uploads == 0 and h.upload_conflicts == 1
    del sim.routes["/v1/scan-logs"]
    assert v.sync(now=sim.now).uploaded == 0  # the conflicting record is not sent again and again
