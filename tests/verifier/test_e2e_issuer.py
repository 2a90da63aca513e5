"""End to end with a real issuer process: enrol, mint, sync, issuer down, verify offline, revoke, sync, DENY."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import httpx
import pytest

from suishenma import load_verification_key
from verifier import Decision, VerdictReason, Verifier

issuer_live = pytest.importorskip("testing.live_issuer", reason="the issuer package is needed for this end-to-end test")


def test_offline_verification_survives_issuer_outage_and_sees_revocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "issuer"
    with contextlib.redirect_stdout(io.StringIO()):
        issuer_live.init_dir(home)
    key = issuer_live.create_api_key(home, "ops", "enrol,mint,revoke")
    kiosk_key = issuer_live.create_api_key(home, "g1", "kiosk")  # named after the kiosk it uploads for
    auth = {"Authorization": f"Bearer {key}"}
    server = issuer_live.LiveIssuer(home).start()
    try:
        with httpx.Client(base_url=server.url, headers=auth) as c:
            subject = c.post("/v1/subjects", json={"name": "王小明", "id_number": "310101200001011234"}).json()
            s = subject["subject"]
            dynamic = c.post(f"/v1/subjects/{s}/codes", json={"scenario": "venue"}).json()["code"]
            paper = c.post(f"/v1/subjects/{s}/offline-codes").json()
        monkeypatch.setenv("SUISHENMA_KIOSK_API_KEY", kiosk_key)
        v = Verifier.init(tmp_path / "gate", server.url, load_verification_key(home / "keys/root.pub"), "venue", "g1")
        assert v.sync().ok
        assert v.verify(dynamic).decision is Decision.ALLOW
        server.stop()  # the issuer goes down: the gate keeps working offline
        offline = v.verify(paper["code"])
        assert offline.decision is Decision.ALLOW and offline.display["code_type"] == "offline"
        assert not v.sync().ok and v.health().offline
        server.start()
        with httpx.Client(base_url=server.url, headers=auth) as c:
            assert c.post(f"/v1/offline-codes/{paper['status_index']}/revoke").status_code == 200
        report = v.sync()
        assert report.ok and "status:SH" in report.updated and report.uploaded == 2
        denied = v.verify(paper["code"])
        assert denied.decision is Decision.DENY and denied.reason is VerdictReason.REVOKED
        v.close()
        metrics = httpx.get(server.url + "/metrics").text
        assert 'suishenma_scan_records_received_total{outcome="accepted"} 2' in metrics
    finally:
        server.stop()
