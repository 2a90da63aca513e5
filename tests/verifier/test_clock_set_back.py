"""A kiosk clock set back after a sync: the verifier keeps a floor it has seen trustworthily.

Lists may be days old, so their signed issue times alone let a clock go back a day unnoticed. The floor is
the issuers' time at the last sync that measured the clock, and the newest verdict logged; it survives a
restart, and a sync that measures the clock again (after a clock that ran ahead is fixed) resets it.
"""

from __future__ import annotations

import pytest

from verifier import Decision, VerdictReason, Verifier

from .conftest import MakeVerifier
from .sim import IssuerSim

HOUR, DAY = 3600, 86400


def _lists_signed_two_days_ago(sim: IssuerSim) -> None:
    sim.publish_trust(2, at=sim.now - 2 * DAY)
    sim.publish_status("SH", 2, at=sim.now - 2 * DAY)


@pytest.mark.parametrize("back", [HOUR, DAY], ids=["an-hour", "a-day"])
def test_clock_set_back_after_a_sync_refuses_a_screenshot_from_then(
    back: int, sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    _lists_signed_two_days_ago(sim)
    v = make_verifier()  # synced now: the issuer's Date header says sim.now
    then = sim.now - back
    screenshot = sim.code(at=then)  # a 60-second code minted at that earlier instant
    verdict = v.verify(screenshot, now=then)  # the kiosk's clock set back to it
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.CLOCK_WRONG
    assert v.health(now=then).clock_wrong
    state = v.state_dir
    v.close()
    reopened = Verifier.open(state, now=then)  # survives a restart
    try:
        assert reopened.verify(screenshot, now=then).reason is VerdictReason.CLOCK_WRONG
        assert reopened.health(now=then).clock_wrong
    finally:
        reopened.close()


def test_clock_within_the_skew_allowance_of_the_floor_is_not_wrong(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    _lists_signed_two_days_ago(sim)
    v = make_verifier()  # venue: 10 s allowed
    assert v.verify(sim.code(at=sim.now - 10), now=sim.now - 10).reason is VerdictReason.OK
    assert v.verify(sim.code(at=sim.now - 11), now=sim.now - 11).reason is VerdictReason.CLOCK_WRONG


def test_clock_set_back_below_the_newest_logged_verdict_is_wrong_after_a_restart(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    _lists_signed_two_days_ago(sim)
    v = make_verifier()
    later = sim.now + 2 * HOUR  # no sync since: only the verdict logged then shows the clock passed it
    assert v.verify(sim.code(at=later), now=later).reason is VerdictReason.OK
    earlier = sim.now + HOUR
    assert v.verify(sim.code(at=earlier), now=earlier).reason is VerdictReason.CLOCK_WRONG
    state = v.state_dir
    v.close()
    reopened = Verifier.open(state, now=earlier)
    try:
        assert reopened.verify(sim.code(at=earlier), now=earlier).reason is VerdictReason.CLOCK_WRONG
    finally:
        reopened.close()


def test_a_sync_that_measures_the_clock_clears_the_floor_left_by_a_clock_that_ran_ahead(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    ahead = sim.now + 3 * DAY  # the clock ran three days ahead for a while, and verdicts were logged then
    v.verify(sim.code(at=ahead), now=ahead)
    assert v.verify(sim.code(), now=sim.now).reason is VerdictReason.CLOCK_WRONG  # NTP fixed it: unproven
    assert v.sync(now=sim.now).clock is not None  # the issuers' time measured again
    assert v.verify(sim.code(), now=sim.now).reason is VerdictReason.OK
    state = v.state_dir
    v.close()
    reopened = Verifier.open(state, now=sim.now)  # the verdicts from before that sync stay superseded
    try:
        assert reopened.verify(sim.code(), now=sim.now).reason is VerdictReason.OK
        assert not reopened.health(now=sim.now).clock_wrong
    finally:
        reopened.close()
