"""Several regions in one trust list: every status list from where its entry says, trusted by signature only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from suishenma import IssuerEntry, SigningKey, StatusList, sign_status_list, sign_trust_list
from verifier import Decision, SyncReason, VerdictReason

from .conftest import MakeVerifier
from .sim import DAY, IssuerSim, Route


@pytest.fixture()
def regions(sim: IssuerSim) -> Iterator[IssuerSim]:
    """SH on ``sim``; JS's status list on a host of its own, named by an absolute URL in JS's entry."""
    sim.keys["JS"] = SigningKey.generate()
    js_host = IssuerSim(now=sim.now, root=sim.root, keys=sim.keys)
    js_host.publish_status("JS", 1)
    entries = [
        IssuerEntry(sim.keys["SH"].public(), "SH", sim.now - DAY, sim.now + DAY, status_uri="/status/SH"),
        IssuerEntry(sim.keys["JS"].public(), "JS", sim.now - DAY, sim.now + DAY, status_uri=f"{js_host.url}/status/JS"),
    ]
    sim.routes["/v1/trust-list"] = Route(sign_trust_list(entries, sim.root, version=2, now=sim.now, ttl=30 * DAY))
    sim.js_host = js_host  # type: ignore[attr-defined]
    yield js_host
    js_host.close()


def test_one_sync_against_one_region_brings_every_regions_lists(
    sim: IssuerSim, regions: IssuerSim, make_verifier: MakeVerifier
) -> None:
    v = make_verifier("transit", sync=False)
    report = v.sync(now=sim.now)
    assert report.ok and report.status_lists == {"SH": 1, "JS": 1}
    sim.close(), regions.close()  # every issuer down: the kiosk works on
    for issuer in ("SH", "JS"):
        verdict = v.verify(sim.code(issuer=issuer, index=7), now=sim.now)
        assert verdict.decision is Decision.ALLOW and verdict.issuer == issuer


def test_one_regions_outage_leaves_the_others_fresh(
    sim: IssuerSim, regions: IssuerSim, make_verifier: MakeVerifier
) -> None:
    v = make_verifier("transit", sync=False)
    assert v.sync(now=sim.now).ok
    regions.routes["/status/JS"].mode = "error"  # Jiangsu's issuer is down
    later = sim.now + 7 * 3600  # past transit's 6-hour limit for a list not confirmed
    report = v.sync(now=later)
    assert not report.ok and set(report.issuer_errors) == {"JS"} and "network" in report.issuer_errors["JS"]
    assert [(p.issuer, p.reason) for p in report.problems] == [("JS", SyncReason.NETWORK)]
    h = v.health(now=later)
    assert not h.status_lists["SH"].stale and h.status_lists["SH"].age_s == 0 and h.status_lists["SH"].error is None
    assert h.status_lists["JS"].stale and h.status_lists["JS"].error
    sh = v.verify(sim.code(issuer="SH", at=later), now=later)
    js = v.verify(sim.code(issuer="JS", at=later), now=later)
    assert sh.decision is Decision.ALLOW
    assert js.decision is Decision.DENY and js.reason is VerdictReason.STALE_LISTS


def test_absolute_status_urls_are_followed_when_the_home_issuer_is_down(
    sim: IssuerSim, regions: IssuerSim, make_verifier: MakeVerifier
) -> None:
    v = make_verifier(sync=False)
    assert v.sync(now=sim.now).ok
    sim.close()  # the issuer this kiosk was set up against is down; Jiangsu revokes a paper code
    regions.publish_status("JS", 2, revoked=[7])
    report = v.sync(now=sim.now + 60)
    assert "status:JS" in report.updated and "JS" not in report.issuer_errors
    assert v.verify(sim.code(issuer="JS", index=7), now=sim.now + 60).reason is VerdictReason.REVOKED


def test_region_serving_another_regions_status_list_is_refused(
    sim: IssuerSim, regions: IssuerSim, make_verifier: MakeVerifier
) -> None:
    """JS's host answers with SH's list (validly signed, by SH): it is not JS's, whatever URL served it."""
    regions.routes["/status/JS"] = Route(sim.routes["/status/SH"].body)
    v = make_verifier(sync=False)
    report = v.sync(now=sim.now)
    assert report.issuer_errors["JS"].startswith("list_wrong_signer") and report.status_lists == {"SH": 1}
    assert [(p.issuer, p.reason) for p in report.problems] == [("JS", SyncReason.LIST_WRONG_SIGNER)]


def test_status_list_naming_another_issuer_is_refused(
    sim: IssuerSim, regions: IssuerSim, make_verifier: MakeVerifier
) -> None:
    """Signed by JS's key but calling itself SH's: refused as JS's list (an issuer speaks for itself only)."""
    body = sign_status_list(
        StatusList(1024, 2),
        sim.keys["JS"],
        uri="/status/SH",
        issuer="SH",
        version=5,
        now=sim.now,
        valid_for=DAY,
        ttl=300,
    )
    regions.routes["/status/JS"] = Route(body)
    v = make_verifier(sync=False)
    report = v.sync(now=sim.now)
    assert report.issuer_errors["JS"] == "list_wrong_signer: the status list of 'SH' was served as 'JS''s"


def test_entry_pointing_at_another_hosts_list_needs_that_issuers_signature(
    sim: IssuerSim, regions: IssuerSim, make_verifier: MakeVerifier
) -> None:
    """A trust-list entry may name any host; what it serves still has to be signed by the listed key."""
    rogue = SigningKey.generate()
    regions.publish_status("JS", 9, signer=rogue)  # the host JS's entry names, serving a forgery
    v = make_verifier(sync=False)
    report = v.sync(now=sim.now)
    assert report.issuer_errors["JS"].startswith("list_wrong_signer") and "JS" not in report.status_lists
