"""Anti-passback at transit: one phone credential passes a verifier at most once per ``reentry_s``.

The replay key of a presentation includes the time the phone signed it, so each second's presentation is
a new code; anti-passback is keyed on the credential the issuer signed instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from suishenma import SigningKey
from testing.live_issuer import free_port
from verifier import BUILTIN, Decision, VerdictReason, Verifier
from verifier.local_service import create_app
from verifier.policy import resolve_policy

from .conftest import MakeVerifier
from .sim import IssuerSim

TEN_MINUTES = 600  # the transit default, pinned: docs and README state it


@pytest.fixture()
def phone() -> SigningKey:
    return SigningKey.generate()


def test_transit_reentry_window_is_ten_minutes_and_off_elsewhere() -> None:
    assert BUILTIN["transit"].reentry_s == TEN_MINUTES
    assert BUILTIN["venue"].reentry_s == 0 and BUILTIN["hospital"].reentry_s == 0
    assert resolve_policy('extends = "transit"\nreentry_s = 60\n').reentry_s == 60


@pytest.mark.parametrize("value", ["-1", "true", '"600"'])
def test_reentry_s_must_be_a_non_negative_integer(value: str) -> None:
    from suishenma import UsageError

    with pytest.raises(UsageError, match="reentry_s must be a non-negative integer"):
        resolve_policy(f'extends = "transit"\nreentry_s = {value}\n')


def test_one_phone_credential_opens_a_transit_gate_once_not_65_times_a_minute(
    sim: IssuerSim, make_verifier: MakeVerifier, phone: SigningKey
) -> None:
    v = make_verifier("transit")
    credential = sim.credential(phone)
    verdicts = [v.verify(sim.device_code(phone, credential, at=sim.now + s), now=sim.now + s) for s in range(65)]
    assert [d.decision for d in verdicts].count(Decision.ALLOW) == 1 and verdicts[0].decision is Decision.ALLOW
    refused = verdicts[1:]
    assert {d.reason for d in refused} == {VerdictReason.PASSBACK} and {d.decision for d in refused} == {Decision.DENY}
    assert "一人一次" in refused[0].message_zh and "one entry per person" in refused[0].message_en
    later = sim.now + TEN_MINUTES
    assert v.verify(sim.device_code(phone, credential, at=later - 1), now=later - 1).reason is VerdictReason.PASSBACK
    assert v.verify(sim.device_code(phone, credential, at=later), now=later).decision is Decision.ALLOW


def test_passback_holds_across_a_restart(sim: IssuerSim, make_verifier: MakeVerifier, phone: SigningKey) -> None:
    v = make_verifier("transit")
    credential = sim.credential(phone)
    assert v.verify(sim.device_code(phone, credential), now=sim.now).decision is Decision.ALLOW
    state = v.state_dir
    v.close()
    with Verifier.open(state, now=sim.now + 30) as reopened:
        code = sim.device_code(phone, credential, at=sim.now + 30)
        assert reopened.verify(code, now=sim.now + 30).reason is VerdictReason.PASSBACK


def test_another_phone_and_a_venue_are_not_held_back(
    sim: IssuerSim, make_verifier: MakeVerifier, phone: SigningKey
) -> None:
    transit, venue = make_verifier("transit", name="gate"), make_verifier("venue", name="venue")
    other = SigningKey.generate()
    mine, theirs = sim.credential(phone), sim.credential(other, index=101)
    assert transit.verify(sim.device_code(phone, mine), now=sim.now).decision is Decision.ALLOW
    assert transit.verify(sim.device_code(other, theirs), now=sim.now).decision is Decision.ALLOW
    for s in range(3):  # a venue lets the same credential in again: no reentry window there
        assert venue.verify(sim.device_code(phone, mine, at=sim.now + s), now=sim.now + s).reason is VerdictReason.OK


@pytest.fixture()
def transit_service(sim: IssuerSim, make_verifier: MakeVerifier) -> Iterator[str]:
    """The local verifier service on loopback (uvicorn in a thread) at the simulator's instant."""
    v = make_verifier("transit", name="service")
    port = free_port()
    app = create_app(v, sync_interval=None, clock=lambda: sim.now)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20  # bounds a hang only
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_70_presentations_of_one_credential_in_parallel_open_the_gate_once(
    sim: IssuerSim, transit_service: str, phone: SigningKey
) -> None:
    credential = sim.credential(phone, at=sim.now - 100)
    codes = [sim.device_code(phone, credential, at=sim.now - s) for s in range(60)]
    codes += codes[:10]  # and ten exact copies: 70 in all

    def present(code: str) -> dict[str, str]:
        with httpx.Client(base_url=transit_service, timeout=20) as c:
            r = c.post("/v1/verify", json={"code": code})
            assert r.status_code == 200, r.text
            return dict(r.json())

    with ThreadPoolExecutor(35) as pool:
        answers = list(pool.map(present, codes))
    assert [a["decision"] for a in answers].count("ALLOW") == 1
    assert {a["reason"] for a in answers if a["decision"] != "ALLOW"} == {"passback"}
