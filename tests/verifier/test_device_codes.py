"""Device-bound codes at the gate: every scenario, the status list for each one, and every refusal."""

from __future__ import annotations

import cbor2
import pytest

from suishenma import Alg, SigningKey, Status, _cose
from suishenma._base45 import b45encode
from suishenma.device import countersign_structure
from suishenma.labels import DEVICE_PREFIX
from verifier import Decision, VerdictReason

from .conftest import MakeVerifier
from .sim import DAY, IssuerSim


@pytest.fixture(params=[Alg.EdDSA, Alg.ES256], ids=["ed25519", "p256"])
def phone(request: pytest.FixtureRequest) -> SigningKey:
    return SigningKey.generate(request.param)


@pytest.mark.parametrize(
    ("scenario", "status", "decision", "reason"),
    [
        ("venue", Status.GREEN, Decision.ALLOW, VerdictReason.OK),
        ("venue", Status.RED, Decision.DENY, VerdictReason.STATUS_RED),
        ("hospital", Status.YELLOW, Decision.REFER, VerdictReason.STATUS_YELLOW),
        ("transit", Status.GREEN, Decision.ALLOW, VerdictReason.OK),
    ],
)
def test_device_code_in_every_scenario(
    sim: IssuerSim,
    make_verifier: MakeVerifier,
    phone: SigningKey,
    scenario: str,
    status: Status,
    decision: Decision,
    reason: VerdictReason,
) -> None:
    v = make_verifier(scenario)
    credential = sim.credential(phone, status, identity=scenario == "hospital")
    verdict = v.verify(sim.device_code(phone, credential, at=sim.now + 3600), now=sim.now + 3610)
    assert (verdict.decision, verdict.reason) == (decision, reason)
    assert verdict.display["code_type"] == "device" and verdict.subject == "0102030405060708"
    if scenario == "hospital":
        assert verdict.display["masked_name"] == "张*三"


def test_lost_phone_revoked_and_status_change_reach_the_gate_in_one_sync(
    sim: IssuerSim, make_verifier: MakeVerifier, phone: SigningKey
) -> None:
    v = make_verifier("venue")
    lost, changed = sim.credential(phone, index=3), sim.credential(phone, index=4)
    assert v.verify(sim.device_code(phone, lost), now=sim.now).decision is Decision.ALLOW
    sim.publish_status("SH", 2, revoked=[3], suspended=[4])  # the issuer revokes and suspends
    assert v.sync(now=sim.now + 60).ok
    refused = [v.verify(sim.device_code(phone, c, at=sim.now + 61), now=sim.now + 61) for c in (lost, changed)]
    assert [(r.decision, r.reason) for r in refused] == [
        (Decision.DENY, VerdictReason.REVOKED),
        (Decision.DENY, VerdictReason.SUSPENDED),
    ]


def test_device_code_needs_its_issuers_status_list(
    sim: IssuerSim, make_verifier: MakeVerifier, phone: SigningKey
) -> None:
    del sim.routes["/status/SH"]
    v = make_verifier("venue", sync=False)
    v.sync(now=sim.now)
    verdict = v.verify(sim.device_code(phone), now=sim.now)
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.NO_STATUS_LIST
    assert v.verify(sim.code(), now=sim.now).decision is Decision.ALLOW  # a dynamic code needs no list here


def test_stale_status_list_refuses_device_codes_per_policy(
    sim: IssuerSim, make_verifier: MakeVerifier, phone: SigningKey
) -> None:
    v = make_verifier("hospital")
    later = sim.now + 8 * DAY  # the list expired after 7 days
    code = sim.device_code(phone, sim.credential(phone, at=later - 100), at=later)
    verdict = v.verify(code, now=later)
    assert verdict.decision is Decision.REFER and verdict.reason is VerdictReason.STALE_LISTS


def test_transit_replay_is_keyed_on_the_signed_presentation(
    sim: IssuerSim, make_verifier: MakeVerifier, phone: SigningKey
) -> None:
    """With anti-passback off, each presentation is single-use (keyed on what the phone signed)."""
    v = make_verifier('extends = "transit"\nreentry_s = 0\n')
    credential = sim.credential(phone)
    first = sim.device_code(phone, credential, at=sim.now + 5)
    twin = sim.device_code(phone, credential, at=sim.now + 5)  # same second: P-256 signs differently
    assert v.verify(first, now=sim.now + 6).decision is Decision.ALLOW
    assert v.verify(twin, now=sim.now + 7).reason is VerdictReason.REPLAYED
    fresh = sim.device_code(phone, credential, at=sim.now + 30)  # the next refresh opens the next gate
    assert v.verify(fresh, now=sim.now + 31).decision is Decision.ALLOW


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other phone", VerdictReason.DEVICE_MISMATCH),
        ("credential expired", VerdictReason.CREDENTIAL_EXPIRED),
        ("screenshot", VerdictReason.EXPIRED),
        ("phone clock ahead", VerdictReason.NOT_YET_VALID),
        ("unknown issuer", VerdictReason.UNKNOWN_KEY),
    ],
)
def test_device_code_refusals(
    sim: IssuerSim, make_verifier: MakeVerifier, phone: SigningKey, case: str, reason: VerdictReason
) -> None:
    v = make_verifier("hospital")
    now = sim.now + 3600
    credential = sim.credential(phone)
    if case == "other phone":
        code = _presented_by(SigningKey.generate(phone.alg), credential, now)
    elif case == "credential expired":
        code = sim.device_code(phone, sim.credential(phone, ttl=600), at=sim.now + 700)
        now = sim.now + 700
    elif case == "screenshot":
        code = sim.device_code(phone, credential, at=now - 120)
    elif case == "phone clock ahead":
        code = sim.device_code(phone, credential, at=now + 300)
    else:
        sim.keys["ZJ"] = SigningKey.generate()  # not in the kiosk's trust list
        code = sim.device_code(phone, sim.credential(phone, issuer="ZJ"), at=now)
    verdict = v.verify(code, now=now)
    assert verdict.decision is Decision.REFER and verdict.reason is reason  # the hospital refers, never turns away


def _presented_by(thief: SigningKey, credential: bytes, now: int) -> str:
    """A stolen credential presented with a key that is not the one it is bound to."""
    msg = _cose.parse(credential)
    aad = cbor2.dumps({6: now})
    sig = thief.cose_key.sign(countersign_structure(msg.protected_bytes, aad, msg.payload, msg.signature))
    unprotected = cbor2.dumps({12: sig, 15: {6: now}})
    return DEVICE_PREFIX + b45encode(_cose.assemble(msg.protected_bytes, unprotected, msg.payload, msg.signature))
