"""Scanner fixtures: a verifier synced from the issuer simulator, and generated videos of its codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier import HttpxFetcher, Verifier

from ..verifier.sim import IssuerSim


@pytest.fixture()
def sim(wall_sim: IssuerSim) -> IssuerSim:
    """The kiosk runs on this machine's clock (the scanner loop and its child processes read it): its
    issuer stands at that instant."""
    return wall_sim


@pytest.fixture()
def state(sim: IssuerSim, tmp_path: Path) -> Path:
    """A venue verifier state folder, synced."""
    path = tmp_path / "state"
    fetcher = HttpxFetcher(timeout=2.0, attempts=1)
    with Verifier.init(path, sim.url, sim.root.public(), "venue", "kiosk-t", fetcher=fetcher) as v:
        assert v.sync().ok
    fetcher.close()
    return path
