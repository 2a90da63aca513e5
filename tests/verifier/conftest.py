"""Verifier fixtures: an issuer simulator with list versions 1 published, and verifiers per scenario."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from verifier import HttpxFetcher, Verifier

from .sim import IssuerSim


def quick_fetcher(sim: IssuerSim | None = None) -> HttpxFetcher:
    """Short timeouts and no real sleeping between retries, so fault tests stay fast; answers are stamped
    with the simulator's instant (the tests' clock), or the wall clock without one."""
    clock = (lambda: float(sim.now)) if sim is not None else time.time
    return HttpxFetcher(timeout=2.0, attempts=2, sleep=lambda s: None, clock=clock)


MakeVerifier = Callable[..., Verifier]


@pytest.fixture()
def make_verifier(sim: IssuerSim, tmp_path: Path) -> Iterator[MakeVerifier]:
    made: list[Verifier] = []

    def make(
        scenario: str | Path = "venue", *, sync: bool = True, name: str = "state", url: str | None = None
    ) -> Verifier:
        v = Verifier.init(
            tmp_path / name,
            url or sim.url,
            sim.root.public(),
            scenario,
            "gate-1",
            fetcher=quick_fetcher(sim),
            now=sim.now,
        )
        made.append(v)
        if sync:
            report = v.sync(now=sim.now)
            assert report.ok, report.errors
        return v

    yield make
    for v in made:
        with contextlib.suppress(Exception):  # already closed by the test
            v.close()
