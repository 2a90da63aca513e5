"""End to end with two live issuers, Shanghai and Jiangsu, under one offline root: a kiosk set up against
Shanghai alone verifies both regions' codes offline after one sync, and one region's outage leaves the
other's lists fresh."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from suishenma import SigningKey, load_verification_key, write_key_pair
from verifier import Decision, VerdictReason, Verifier

issuer_live = pytest.importorskip("testing.live_issuer", reason="the issuer package is needed for this end-to-end test")
issuer_cli = pytest.importorskip("issuer.cli")


def _cli(*args: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert issuer_cli.main(list(args)) == 0, args


@pytest.fixture()
def regions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, issuer_live.LiveIssuer]]:
    offline = tmp_path / "offline"
    offline.mkdir()
    write_key_pair(SigningKey.generate(), offline / "root")
    servers, requests = {}, []
    for region in ("SH", "JS"):
        home, port = tmp_path / region, issuer_live.free_port()
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("SUISHENMA_ISSUER_PUBLIC_URL", url)
        _cli("--dir", str(home), "init", "--issuer-id", region, "--root-pub", str(offline / "root.pub"))
        _cli("--dir", str(home), "trust-list", "request", "--out", str(tmp_path / f"{region}.json"))
        requests += ["--request", str(tmp_path / f"{region}.json")]
        servers[region] = issuer_live.LiveIssuer(home, port, env={"SUISHENMA_ISSUER_PUBLIC_URL": url})
    signed = tmp_path / "trust.cwt"
    # the root's operator confirms each region's key (read here from the requests; in life, by phone)
    kids = ",".join(
        f"{e['issuer']}={e['kid']}"
        for r in ("SH", "JS")
        for e in json.loads((tmp_path / f"{r}.json").read_text())["entries"]
    )
    root_key = str(offline / "root.key")
    _cli("trust-list", "sign", *requests, "--expect", kids, "--root-key", root_key, "--out", str(signed))
    for server in servers.values():
        monkeypatch.setenv("SUISHENMA_ISSUER_PUBLIC_URL", server.url)
        _cli("--dir", str(server.base), "trust-list", "import", str(signed))
    try:
        yield {r: s.start() for r, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()


def _mint(server: issuer_live.LiveIssuer) -> tuple[str, dict[str, object], dict[str, str]]:
    """A dynamic code and a paper code of one enrolled person, and the ops key's header."""
    key = issuer_live.create_api_key(server.base, "ops", "enrol,mint,revoke")
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=auth) as c:
        s = c.post("/v1/subjects", json={"name": "王小明", "id_number": "320102200001011234"}).json()["subject"]
        dynamic = c.post(f"/v1/subjects/{s}/codes", json={"scenario": "venue"}).json()["code"]
        paper = c.post(f"/v1/subjects/{s}/offline-codes").json()
    return dynamic, paper, auth


def test_two_regions_under_one_root(regions: dict[str, issuer_live.LiveIssuer], tmp_path: Path) -> None:
    sh, js = regions["SH"], regions["JS"]
    minted = {r: _mint(s) for r, s in regions.items()}
    root = load_verification_key(sh.base / "keys" / "root.pub")
    v = Verifier.init(tmp_path / "gate", sh.url, root, "venue", "g1")  # set up against Shanghai only
    report = v.sync()
    assert report.ok, report.errors
    assert set(report.status_lists) == {"SH", "JS"}
    assert v.health().clock_skew_s is not None and not v.health().clock_wrong

    sh.stop(), js.stop()  # both regions offline: every region's codes still verify
    for region, (dynamic, paper, _) in minted.items():
        for code in (dynamic, str(paper["code"])):
            verdict = v.verify(code)
            assert verdict.decision is Decision.ALLOW and verdict.issuer == region, (region, verdict)

    # Shanghai stays down; Jiangsu comes back and revokes its paper code: the kiosk learns it from Jiangsu
    js.start()
    with httpx.Client(base_url=js.url, headers=minted["JS"][2]) as c:
        assert c.post(f"/v1/offline-codes/{minted['JS'][1]['status_index']}/revoke").status_code == 200
    report = v.sync()
    assert "status:JS" in report.updated and "JS" not in report.issuer_errors
    assert v.verify(str(minted["JS"][1]["code"])).reason is VerdictReason.REVOKED
    assert v.verify(str(minted["SH"][1]["code"])).decision is Decision.ALLOW  # held list, still fresh

    # and the other way round: Jiangsu down, Shanghai up: Shanghai fresh, Jiangsu's outage is Jiangsu's alone
    js.stop()
    sh.start()
    at = int(time.time())  # one instant for the sync and the health read: Jiangsu's retries take real time
    report = v.sync(now=at)
    assert set(report.issuer_errors) == {"JS"}
    h = v.health(now=at)
    # fresh as of Shanghai's signed timestamp (re-signed every minute), whatever Jiangsu does
    assert h.status_lists["SH"].error is None and h.status_lists["SH"].age_s == at - v.state.status["SH"].issued_at
    assert 0 <= h.status_lists["SH"].age_s <= 60
    assert h.status_lists["JS"].error and not h.status_lists["JS"].stale  # stale only past the policy's limit
    v.close()
