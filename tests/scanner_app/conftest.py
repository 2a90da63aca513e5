"""Scanner fixtures: a verifier synced from the issuer simulator, and generated videos of its codes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from verifier import HttpxFetcher, Verifier

from ..verifier.sim import IssuerSim


@pytest.fixture()
def sim() -> Iterator[IssuerSim]:
    s = IssuerSim(now=int(time.time()))
    s.publish_trust(1)
    s.publish_status("SH", 1)
    yield s
    s.close()


@pytest.fixture()
def state(sim: IssuerSim, tmp_path: Path) -> Path:
    """A venue verifier state folder, synced."""
    path = tmp_path / "state"
    fetcher = HttpxFetcher(timeout=2.0, attempts=1)
    with Verifier.init(path, sim.url, sim.root.public(), "venue", "kiosk-t", fetcher=fetcher) as v:
        assert v.sync().ok
    fetcher.close()
    return path
