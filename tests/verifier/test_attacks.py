"""Sync and verification under attack (DESIGN §3, after TUF's threat model); each test names what it stops."""

from __future__ import annotations

import threading

import cbor2
import pytest

from suishenma import Claims, SigningKey, Status, mint
from suishenma._base45 import b45encode
from suishenma.labels import STATUS_LIST_TYP, TRUST_LIST_TYP
from verifier import Decision, SyncReason, SyncReport, VerdictReason, Verifier

from .conftest import MakeVerifier
from .sim import DAY, IssuerSim, Route


def test_rollback_to_older_trust_list_rejected(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.publish_trust(5)
    assert v.sync(now=sim.now).trust_list_version == 5
    sim.publish_trust(4)
    report = v.sync(now=sim.now)
    assert not report.ok and report.reasons[0] is SyncReason.LIST_ROLLBACK
    assert v.health(now=sim.now).trust_list_version == 5


def test_rollback_to_older_status_list_rejected_even_after_restart(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.publish_status("SH", 3, revoked=[7])
    v.sync(now=sim.now)
    sim.publish_status("SH", 2)  # an attacker replays the list from before the revocation
    state = v.state_dir
    v.close()
    v = type(v).open(state, fetcher=v._fetcher, now=sim.now)
    report = v.sync(now=sim.now)
    assert SyncReason.LIST_ROLLBACK in report.reasons
    assert v.verify(sim.code(index=7), now=sim.now).reason is VerdictReason.REVOKED
    v.close()


def test_freeze_expired_list_rejected(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.publish_trust(2, at=sim.now - 40 * DAY, ttl=30 * DAY)  # newer version, but already expired
    report = v.sync(now=sim.now)
    assert not report.ok and report.reasons[0] is SyncReason.LIST_EXPIRED
    assert v.health(now=sim.now).trust_list_version == 1


def test_freeze_network_blocked_makes_lists_stale_per_policy(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("venue")
    code_later = sim.code(at=sim.now + 2 * DAY)
    assert v.verify(code_later, now=sim.now + 2 * DAY).decision is Decision.ALLOW
    sim.routes["/v1/trust-list"].mode = "error"
    later = sim.now + 4 * DAY  # venue lists go stale after 3 days without confirmation
    assert not v.sync(now=later).ok
    verdict = v.verify(sim.code(at=later), now=later)
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.STALE_LISTS
    assert v.health(now=later).stale and v.health(now=later).offline


def test_mix_and_match_status_list_signed_by_unlisted_key_rejected(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    rogue = SigningKey.generate()
    sim.publish_status("SH", 9, signer=rogue)  # would un-revoke everything
    report = v.sync(now=sim.now)
    assert SyncReason.LIST_WRONG_SIGNER in report.reasons
    assert v.health(now=sim.now).status_lists["SH"].version == 1


def test_mix_and_match_other_issuers_key_cannot_sign_my_status_list(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    sim.keys["BJ"] = SigningKey.generate()
    sim.publish_trust(2)
    sim.publish_status("BJ", 1)
    v = make_verifier()
    sim.publish_status("SH", 2, signer=sim.keys["BJ"])
    assert SyncReason.LIST_WRONG_SIGNER in v.sync(now=sim.now).reasons


def test_wrong_root_trust_list_rejected(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.publish_trust(2, signer=SigningKey.generate())
    report = v.sync(now=sim.now)
    assert report.reasons[0] is SyncReason.LIST_WRONG_SIGNER
    assert v.health(now=sim.now).trust_list_version == 1


def test_trust_list_signed_by_a_trusted_issuer_key_not_the_root_is_rejected(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    """A region's key signs codes and its status list, never the trust list: only the pinned root does.
    A region that could would add keys of its choosing for every other region."""
    v = make_verifier()
    rogue = SigningKey.generate()
    sim.keys["XX"] = rogue
    sim.publish_trust(2, signer=sim.keys["SH"])  # signed by a key the verifier already trusts, adding XX
    report = v.sync(now=sim.now)
    assert report.reasons == [SyncReason.LIST_WRONG_SIGNER]
    assert v.health(now=sim.now).trust_list_version == 1
    code = mint(Claims.dynamic(b"\x01" * 8, Status.GREEN, sim.now, issuer="XX"), rogue)
    assert v.verify(code, now=sim.now).reason is VerdictReason.UNKNOWN_KEY


def test_tampered_list_bytes_rejected(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    body = bytearray(sim.publish_status("SH", 2))
    body[len(body) // 2] ^= 0x01
    sim.routes["/status/SH"].body = bytes(body)
    report = v.sync(now=sim.now)
    assert not report.ok and v.health(now=sim.now).status_lists["SH"].version == 1


def test_endless_data_download_stops_at_the_cap(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.routes["/status/SH"].mode = "endless"
    report = _sync_bounded(v, sim.now)
    assert SyncReason.TOO_LARGE in report.reasons
    assert v.health(now=sim.now).status_lists["SH"].version == 1


def test_replayed_transit_code_opens_one_gate_once(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("transit")
    code = sim.code()
    first = v.verify(code, now=sim.now + 1)
    again = v.verify(code, now=sim.now + 2)
    assert first.decision is Decision.ALLOW
    assert again.decision is Decision.DENY and again.reason is VerdictReason.REPLAYED
    assert v.verify(sim.code(at=sim.now + 3), now=sim.now + 3).decision is Decision.ALLOW  # a fresh code passes
    reopened = type(v).open(v.state_dir, now=sim.now)
    assert reopened.verify(code, now=sim.now + 4).reason is VerdictReason.REPLAYED  # survives a restart
    reopened.close()


def test_code_from_issuer_removed_from_trust_list_denied(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    sim.keys["BJ"] = SigningKey.generate()
    sim.publish_trust(2)
    sim.publish_status("BJ", 1)
    v = make_verifier()
    bj_code = sim.code(issuer="BJ")
    assert v.verify(bj_code, now=sim.now).decision is Decision.ALLOW
    sim.publish_trust(3, issuers=["SH"])
    assert v.sync(now=sim.now).ok
    verdict = v.verify(bj_code, now=sim.now)
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.UNKNOWN_KEY
    assert "BJ" not in v.health(now=sim.now).status_lists
    reopened = type(v).open(v.state_dir, now=sim.now)
    assert reopened.load_problems == [] and "BJ" not in reopened.health(now=sim.now).status_lists
    reopened.close()


def test_forged_code_denied(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.keys["SH"] = SigningKey.generate()  # an attacker's key claiming to be SH
    verdict = v.verify(sim.code(), now=sim.now)
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.UNKNOWN_KEY


def test_all_issuers_down_verification_goes_on_and_reports_offline(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.close()
    report = v.sync(now=sim.now + 3600)
    assert not report.ok and report.errors
    assert v.verify(sim.code(at=sim.now + 3600), now=sim.now + 3600).decision is Decision.ALLOW
    h = v.health(now=sim.now + 3600)
    assert h.offline and not h.stale and h.trust_list_age_s == 3600


def test_mirror_serves_when_first_issuer_is_down(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier(url=f"http://127.0.0.1:9,{sim.url}")  # port 9 (discard) refuses connections
    assert v.health(now=sim.now).trust_list_version == 1
    assert v.verify(sim.code(), now=sim.now).decision is Decision.ALLOW


def test_cached_list_tampered_on_disk_is_not_used_after_restart(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    state = v.state_dir
    v.close()
    import sqlite3

    conn = sqlite3.connect(state / "verifier.db")
    body = bytearray(conn.execute("SELECT body FROM lists WHERE name = 'trust'").fetchone()[0])
    body[-5] ^= 0xFF
    conn.execute("UPDATE lists SET body = ? WHERE name = 'trust'", (bytes(body),))
    conn.commit()
    conn.close()
    v = type(v).open(state, now=sim.now)
    assert v.load_problems and "trust list" in v.load_problems[0]
    assert v.verify(sim.code(), now=sim.now).reason is VerdictReason.NO_TRUST_LIST
    v.close()


def test_yellow_code_denied_at_venue_referred_at_hospital(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    venue, hospital = make_verifier("venue", name="v"), make_verifier("hospital", name="h")
    yellow = sim.code(Status.YELLOW, identity=True)
    red = sim.code(Status.RED, identity=True)
    assert venue.verify(yellow, now=sim.now).decision is Decision.DENY
    assert venue.verify(red, now=sim.now).reason is VerdictReason.STATUS_RED
    for code in (yellow, red, "SM1:garbage", "not a code at all", sim.code()):
        assert hospital.verify(code, now=sim.now).decision is Decision.REFER  # never a bare denial
    ok = hospital.verify(sim.code(identity=True), now=sim.now)
    assert ok.decision is Decision.ALLOW and ok.display["masked_name"] == "张*三"
    assert hospital.verify(sim.code(), now=sim.now).reason is VerdictReason.MISSING_FIELDS


def _reencoded(code: str, *, compress: bool = False, flip_s: bool = False) -> str:
    """The same signed content in another text: zlib transport, or ECDSA's other valid signature (r, n - s)."""
    import zlib

    import cbor2

    from suishenma._base45 import b45decode, b45encode

    raw = b45decode(code[4:])
    raw = zlib.decompress(raw) if raw[0] == 0x78 else raw
    if flip_s:
        tag = cbor2.loads(raw)
        protected, unprotected, payload, sig = tag.value
        n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        r, s = sig[:32], int.from_bytes(sig[32:], "big")
        raw = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, r + (n - s).to_bytes(32, "big")]))
    return "SM1:" + b45encode(zlib.compress(raw, 9) if compress else raw)


def test_replayed_transit_code_reencoded_with_zlib_is_still_a_replay(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    v = make_verifier("transit")
    code = sim.code()
    copy = _reencoded(code, compress=True)
    assert copy != code
    assert v.verify(code, now=sim.now).decision is Decision.ALLOW
    assert v.verify(copy, now=sim.now).reason is VerdictReason.REPLAYED


def test_replayed_transit_code_with_the_other_ecdsa_signature_is_still_a_replay(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    from suishenma import Alg

    sim.keys["SH"] = SigningKey.generate(Alg.ES256)
    sim.publish_trust(2)
    sim.publish_status("SH", 2)
    v = make_verifier("transit")
    code = sim.code()
    twin = _reencoded(code, flip_s=True)
    assert twin != code
    assert v.verify(code, now=sim.now).decision is Decision.ALLOW
    assert v.verify(twin, now=sim.now).reason is VerdictReason.REPLAYED  # not a fresh "valid" code


def _sync_bounded(v: Verifier, now: int) -> SyncReport:
    """Sync in a thread; the join timeout only stops a broken deadline from hanging the suite."""
    out: list[SyncReport] = []
    t = threading.Thread(target=lambda: out.append(v.sync(now=now)), daemon=True)
    t.start()
    t.join(60)
    assert out, "sync still running: the download deadline did not stop it"
    return out[0]


@pytest.mark.parametrize("mode", ["drip", "slow-headers"])
def test_slow_server_gives_up_at_the_deadline(mode: str, sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    """A server that drips body bytes, or header lines, each well inside the read timeout."""
    from verifier import HttpxFetcher

    v = make_verifier()
    v._fetcher = HttpxFetcher(timeout=2.0, attempts=1, deadline=1.5, clock=lambda: float(sim.now))
    sim.routes["/status/SH"].mode = mode
    report = _sync_bounded(v, sim.now)
    assert report.problems[0].reason is SyncReason.NETWORK and report.problems[0].issuer == "SH"
    assert "status list of SH: network: GET " in report.errors[0] and "not done after 1.5 s" in report.errors[0]
    assert v.health(now=sim.now).status_lists["SH"].version == 1
    sim.routes["/status/SH"].mode = "ok"
    assert v.verify(sim.code(), now=sim.now).decision is Decision.ALLOW  # the sync lock was let go


def test_slow_headers_on_the_trust_list_let_the_next_mirror_serve(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    from verifier import HttpxFetcher

    slow = IssuerSim(now=sim.now, root=sim.root, keys=sim.keys)
    try:
        slow.publish_trust(1)
        slow.routes["/v1/trust-list"].mode = "slow-headers"
        v = make_verifier(sync=False, url=f"{slow.url},{sim.url}")
        v._fetcher = HttpxFetcher(timeout=2.0, attempts=1, deadline=1.0)
        report = _sync_bounded(v, sim.now)
        assert report.ok, report.errors
        assert "not done after 1 s" in report.warnings[0]
    finally:
        slow.close()


def _crafted_decimal_list(sim: IssuerSim, signer: SigningKey, typ: str) -> bytes:
    """A list whose protected header holds CBOR tag 4 with an exponent no decimal context can hold."""
    protected = cbor2.dumps({1: int(signer.alg), 4: signer.kid, 16: typ, 99: cbor2.CBORTag(4, [2**63 - 1, 1])})
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"\xa0", bytes(64)]))


def test_crafted_cbor_code_gets_a_verdict_and_a_scan_record(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("hospital")
    protected = cbor2.dumps({1: -8, 4: b"\x00" * 4, 99: cbor2.CBORTag(5, [2**63 - 1, 1])})
    text = "SM1:" + b45encode(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"", b""])))
    verdict = v.verify(text, now=sim.now)
    assert verdict.decision is Decision.REFER and verdict.reason is VerdictReason.MALFORMED
    assert [r.reason for r in v.store.scans()] == ["malformed"]


def test_verify_returns_a_verdict_for_any_input_whatsoever(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    for junk in (b"SM1:bytes", None, 42, "SM1:\ud800", "\x00" * 10_000):
        verdict = v.verify(junk, now=sim.now)  # type: ignore[arg-type]
        assert verdict.decision is Decision.DENY
        assert verdict.reason in (VerdictReason.NOT_A_CODE, VerdictReason.MALFORMED)
    assert len(list(v.store.scans())) == 5


def test_crafted_cbor_trust_list_is_a_list_error_and_the_next_mirror_serves(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    rogue = IssuerSim(now=sim.now, root=sim.root, keys=sim.keys)
    try:
        rogue.routes["/v1/trust-list"] = Route(_crafted_decimal_list(sim, sim.root, TRUST_LIST_TYP))
        v = make_verifier(sync=False, url=f"{rogue.url},{sim.url}")
        report = v.sync(now=sim.now)
        assert report.reasons[0] is SyncReason.LIST_MALFORMED and "tag 4 is not allowed" in report.errors[0]
        assert v.health(now=sim.now).trust_list_version == 1  # served by the second mirror
        assert v.verify(sim.code(), now=sim.now).decision is Decision.ALLOW
    finally:
        rogue.close()


def test_crafted_cbor_status_list_is_a_list_error(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    sim.routes["/status/SH"] = Route(_crafted_decimal_list(sim, sim.keys["SH"], STATUS_LIST_TYP))
    report = v.sync(now=sim.now)
    assert report.reasons == [SyncReason.LIST_MALFORMED]
    assert report.errors == ["status list of SH: list_malformed: CBOR tag 4 is not allowed here"]
    assert v.health(now=sim.now).status_lists["SH"].version == 1
