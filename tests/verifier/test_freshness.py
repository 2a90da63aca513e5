"""Signed timestamps and deltas at the verifier: freshness from signed time, and every list attack again."""

from __future__ import annotations

from array import array
from dataclasses import replace
from pathlib import Path

import pytest

from suishenma import SigningKey, parse_delta
from verifier import Decision, HttpxFetcher, SyncReason, VerdictReason, Verifier
from verifier.fetch import FetchResult

from .conftest import MakeVerifier
from .sim import IssuerSim

HOUR = 3600


@pytest.fixture()
def stamped(sim: IssuerSim) -> IssuerSim:
    """The simulator as an issuer with timestamps: its trust list names them, version 1 is stamped."""
    sim.stamps = True
    sim.keys["JS"] = SigningKey.generate()
    sim.publish_trust(1)
    sim.publish_version("SH", 1)
    sim.publish_version("JS", 1)
    return sim


def _revoked_credential_code(sim: IssuerSim, at: int) -> str:
    phone = SigningKey.generate()
    return sim.device_code(phone, sim.credential(phone, index=7, at=at - 60), at=at)


def test_a_frozen_mirror_cannot_keep_a_transit_kiosk_fresh(stamped: IssuerSim, make_verifier: MakeVerifier) -> None:
    sim = stamped
    v = make_verifier("transit")
    start = sim.now
    # The issuer revokes index 7 in version 2; the mirror the kiosk syncs from froze before it and keeps
    # serving what it held: version 1 and its (soon expired) timestamp.
    reasons = []
    for hour in range(1, 8):
        sim.now = start + hour * HOUR
        report = v.sync(now=sim.now)
        reasons.append(report.reasons)
    assert all(r == [SyncReason.LIST_EXPIRED] * 2 for r in reasons)  # replayed timestamps vouch for nothing
    health = v.health(now=sim.now)
    assert health.status_lists["SH"].age_s == 7 * HOUR and health.status_lists["SH"].stale
    verdict = v.verify(_revoked_credential_code(sim, sim.now), now=sim.now)
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.STALE_LISTS


def test_the_same_kiosk_behind_a_live_issuer_stays_fresh_and_learns_the_revocation(
    stamped: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim = stamped
    v = make_verifier("transit")
    start = sim.now
    sim.now = start + 600
    sim.publish_version("SH", 2, revoked=[7])
    for hour in range(1, 8):
        sim.now = start + hour * HOUR
        sim.publish_timestamp("SH", 2, at=sim.now - 120)  # re-signed on its timer two minutes ago
        sim.publish_timestamp("JS", 1)
        report = v.sync(now=sim.now)
        assert report.ok, report.errors
        assert report.downloads["SH"] == ("delta" if hour == 1 else "timestamp")
    health = v.health(now=sim.now)
    # fresh as of the timestamp's signed time, not of the sync
    assert health.status_lists["SH"].version == 2 and health.status_lists["SH"].age_s == 120
    assert not health.stale
    verdict = v.verify(_revoked_credential_code(sim, sim.now), now=sim.now)
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.REVOKED


def test_a_list_brought_up_to_date_by_deltas_is_the_same_after_a_restart(
    stamped: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim = stamped
    v = make_verifier("venue", name="kiosk")
    for version, revoked in ((2, [7]), (3, [7, 9]), (4, [9])):
        sim.now += 300
        sim.publish_version("SH", version, revoked=revoked)
        sim.publish_timestamp("JS", 1)
        report = v.sync(now=sim.now)
        assert report.ok and report.downloads["SH"] == "delta", report.errors
    checked = v.health(now=sim.now).status_lists["SH"]
    v.close()
    again = Verifier.open(v.state_dir, fetcher=None, now=sim.now)
    try:
        health = again.health(now=sim.now)
        assert health.status_lists["SH"].version == 4 and health.status_lists["SH"].age_s == checked.age_s
        lst = again.state.status["SH"]
        assert (lst.status(7), lst.status(9)) == (0, 1)
    finally:
        again.close()


def test_a_timestamp_naming_an_older_version_is_a_rollback(stamped: IssuerSim, make_verifier: MakeVerifier) -> None:
    sim = stamped
    v = make_verifier()
    sim.now += 300
    sim.publish_version("SH", 2, revoked=[7])
    assert v.sync(now=sim.now).ok
    sim.now += 300
    sim.publish_timestamp("SH", 1)  # signed now, but naming the version before
    sim.publish_timestamp("JS", 1)
    report = v.sync(now=sim.now)
    assert report.reasons == [SyncReason.LIST_ROLLBACK]
    assert v.health(now=sim.now).status_lists["SH"].version == 2
    assert v.health(now=sim.now).status_lists["SH"].age_s == 300  # and it confirms nothing


def test_timestamps_from_the_wrong_signer_are_refused(stamped: IssuerSim, make_verifier: MakeVerifier) -> None:
    sim = stamped
    v = make_verifier()
    sim.now += 300
    for signer, named in ((SigningKey.generate(), "SH"), (sim.keys["JS"], "SH"), (sim.keys["JS"], "JS")):
        sim.publish_timestamp("SH", 1, signer=signer, named=named)
        sim.publish_timestamp("JS", 1)
        report = v.sync(now=sim.now)
        assert report.reasons == [SyncReason.LIST_WRONG_SIGNER]
        assert v.health(now=sim.now).status_lists["SH"].age_s == 300
        assert v.health(now=sim.now).status_lists["JS"].age_s == 0  # the other region stays fresh


@pytest.mark.parametrize("damage", ["other-change", "cut", "other-base", "endless"])
def test_a_delta_that_does_not_apply_costs_a_full_download_and_nothing_else(
    damage: str, stamped: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim = stamped
    v = make_verifier()
    sim.now += 300
    sim.publish_version("SH", 2, revoked=[7])
    route = sim.routes["/status/SH/deltas/1/2"]
    delta = parse_delta(route.body)
    if damage == "other-change":  # well formed, but revokes index 8: the result is not what the timestamp names
        route.body = replace(delta, indices=array("q", [8])).to_bytes()
    elif damage == "cut":
        route.body = route.body[:-3]
    elif damage == "endless":  # cut off at the delta's cap, never buffered whole
        route.mode = "endless"
    else:  # a delta for another version 1 (a mirror mixing lists)
        route.body = replace(delta, from_digest=bytes(8)).to_bytes()
    sim.publish_timestamp("JS", 1)
    report = v.sync(now=sim.now)
    assert report.ok and report.downloads["SH"] == "full"
    expected = {
        "other-change": "list_delta_mismatch",
        "cut": "list_malformed",
        "other-base": "list_delta_mismatch",
        "endless": "too_large",
    }
    assert [w for w in report.warnings if "delta 1 to 2" in w and expected[damage] in w], report.warnings
    assert v.state.status["SH"].status(7) == 1 and v.state.status["SH"].version == 2


def test_endless_timestamp_stops_at_its_cap(stamped: IssuerSim, make_verifier: MakeVerifier) -> None:
    sim = stamped
    v = make_verifier()
    sim.routes["/status/SH/timestamp"].mode = "endless"
    report = v.sync(now=sim.now)
    assert SyncReason.TOO_LARGE in report.reasons


class _Undated(HttpxFetcher):
    """Answers with no Date header and no arrival time: the only clock evidence is what lists sign."""

    def fetch(self, url: str, etag: str | None, max_bytes: int) -> FetchResult:
        r = super().fetch(url, etag, max_bytes)
        return FetchResult(r.status, r.body, r.etag)


def test_a_clock_set_behind_the_newest_timestamp_is_wrong(stamped: IssuerSim, tmp_path: Path) -> None:
    sim = stamped
    v = Verifier.init(tmp_path / "k", sim.url, sim.root.public(), "transit", "gate-1", fetcher=_Undated(), now=sim.now)
    assert v.sync(now=sim.now).ok
    sim.now += HOUR
    sim.publish_timestamp("SH", 1)  # signed an hour after the lists and the trust list
    sim.publish_timestamp("JS", 1)
    assert v.sync(now=sim.now).ok
    back = sim.now - 60  # the kiosk's clock is set back a minute: behind the newest timestamp only
    verdict = v.verify(sim.code(at=back), now=back)
    assert verdict.reason is VerdictReason.CLOCK_WRONG
    assert v.verify(sim.code(at=sim.now), now=sim.now).reason is VerdictReason.OK
    v.close()


def test_a_timestamp_signed_by_the_issuer_but_naming_another_is_refused(
    stamped: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim = stamped
    v = make_verifier()
    sim.now += 300
    sim.publish_timestamp("SH", 1, named="JS")  # SH's own key, JS's name: a mirror mixing regions
    sim.publish_timestamp("JS", 1)
    report = v.sync(now=sim.now)
    assert report.reasons == [SyncReason.LIST_WRONG_SIGNER] and "served as 'SH'" in report.errors[0]


def test_a_delta_of_another_size_than_the_timestamp_names_is_not_applied(
    stamped: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim = stamped
    v = make_verifier()
    sim.now += 300
    sim.publish_version("SH", 2, revoked=[7])
    route = sim.routes["/status/SH/deltas/1/2"]
    route.body = replace(parse_delta(route.body), size=1 << 26).to_bytes()  # would allocate 16 MB
    sim.publish_timestamp("JS", 1)
    report = v.sync(now=sim.now)
    assert report.downloads["SH"] == "full" and any("of 67108864 entries" in w for w in report.warnings)
    assert v.state.status["SH"].size == 1024


def test_a_replayed_older_timestamp_confirms_nothing_and_keeps_the_newer(
    stamped: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim = stamped
    v = make_verifier(name="kiosk")
    first = sim.routes["/status/SH/timestamp"].body
    sim.now += 300
    sim.publish_timestamp("SH", 1)
    sim.publish_timestamp("JS", 1)
    assert v.sync(now=sim.now).ok
    sim.routes["/status/SH/timestamp"].body = first  # still valid (600 s): a replay
    sim.now += 60
    assert v.sync(now=sim.now).ok
    assert v.health(now=sim.now).status_lists["SH"].age_s == 60
    v.close()
    again = Verifier.open(v.state_dir, now=sim.now)
    assert (
        again.health(now=sim.now).status_lists["SH"].age_s == 60 and again.state.status["SH"].issued_at == sim.now - 60
    )
    again.close()


def test_changes_grown_to_half_the_full_list_bring_a_new_full_list(
    stamped: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim = stamped
    v = make_verifier()
    downloads = []
    for version in range(2, 17):  # one more revocation each version: the changes kept since the full list grow
        sim.now += 300
        sim.publish_version("SH", version, revoked=[7 * i for i in range(5 * version)])
        sim.publish_timestamp("JS", 1)
        report = v.sync(now=sim.now)
        assert report.ok, report.errors
        downloads.append(report.downloads["SH"])
    assert downloads[0] == "delta" and "full" in downloads  # the changes outgrew half the list
    assert v.state.status["SH"].version == 16
    assert [v.state.status["SH"].status(i) for i in (0, 7, 8, 7 * 79)] == [1, 1, 0, 1]


def test_a_full_list_older_than_its_timestamp_is_held_as_of_its_own_signing_time(
    stamped: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim = stamped
    sim.now += 300
    sim.publish_version("SH", 2, revoked=[7])
    sim.publish_status("SH", 1, at=sim.now - 300)  # a mirror behind: the old list, under a timestamp naming 2
    sim.routes.pop("/status/SH/deltas/1/2")
    v = make_verifier(sync=False)
    report = v.sync(now=sim.now)
    assert report.downloads["SH"] == "full" and any("timestamp names 2" in w for w in report.warnings)
    assert v.health(now=sim.now).status_lists["SH"].age_s == 300  # fresh as of its own iat only


def test_issuers_without_timestamps_keep_the_whole_list_sync(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.publish_status("SH", 2, revoked=[7])
    report = v.sync(now=sim.now)
    assert report.ok and report.downloads["SH"] == "full"
    assert v.sync(now=sim.now).downloads == {}  # a 304


def test_one_regions_outage_leaves_the_others_fresh(stamped: IssuerSim, make_verifier: MakeVerifier) -> None:
    sim = stamped
    v = make_verifier()
    sim.now += HOUR
    sim.routes["/status/SH/timestamp"].mode = "error"
    sim.publish_timestamp("JS", 1)
    report = v.sync(now=sim.now)
    assert report.reasons == [SyncReason.NETWORK] and "SH" in report.issuer_errors
    lists = v.health(now=sim.now).status_lists
    assert (lists["SH"].age_s, lists["JS"].age_s) == (HOUR, 0)
