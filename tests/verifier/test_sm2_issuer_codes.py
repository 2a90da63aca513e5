"""A federated list with an SM2 issuer beside an Ed25519 one: the kiosk syncs both and decides offline."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from suishenma import Alg, SigningKey, Status
from verifier.verdict import Decision, VerdictReason

from .conftest import MakeVerifier
from .sim import IssuerSim


@pytest.fixture()
def sm2_sim(sim: IssuerSim) -> Iterator[IssuerSim]:
    sim.keys["JS"] = SigningKey.generate(Alg.SM2)
    sim.publish_trust(2)
    sim.publish_status("JS", 1)
    yield sim


def test_sm2_issuer_codes_are_decided_offline(sm2_sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier("venue")
    assert v.verify(sm2_sim.code(issuer="JS"), now=sm2_sim.now).decision is Decision.ALLOW
    red = v.verify(sm2_sim.code(Status.RED, issuer="JS"), now=sm2_sim.now)
    assert red.decision is Decision.DENY and red.reason is VerdictReason.STATUS_RED
    assert v.verify(sm2_sim.code(issuer="SH"), now=sm2_sim.now).decision is Decision.ALLOW


def test_kiosk_without_the_sm2_library_asks_for_staff(
    sm2_sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trust list naming an SM2 key syncs (no SM2 arithmetic needed); the SM2 issuer's status list
    cannot be checked and the sync says why; SM2 codes get a verdict that calls staff."""
    monkeypatch.setitem(sys.modules, "gmalglib.sm2", None)
    v = make_verifier("venue", sync=False)
    report = v.sync(now=sm2_sim.now)
    assert report.trust_list_version == 2 and "SH" in report.status_lists and "JS" not in report.status_lists
    assert any("status list of JS" in e and "suishenma[sm2]" in e for e in report.errors)
    verdict = v.verify(sm2_sim.code(issuer="JS"), now=sm2_sim.now)
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.UNKNOWN_KEY
    assert v.verify(sm2_sim.code(issuer="SH"), now=sm2_sim.now).decision is Decision.ALLOW
