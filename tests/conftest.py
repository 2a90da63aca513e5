"""Shared fixtures: fixed instants and keys (tests pass time in; nothing patches the clock)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from suishenma import Alg, Claims, KeyRing, SigningKey, Status

from .pg_server import PgServer
from .verifier.sim import IssuerSim

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Beside the project in CI; a copy of the tree elsewhere (e.g. mutation testing) names it explicitly.
SHARED_DATA = Path(os.environ.get("SUISHENMA_SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data")
NOW = 1_790_000_000  # 2026-09-21T14:13:20Z
SUBJECT = bytes.fromhex("0011223344556677")


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test when that public data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public test data not found at {path} (it sits beside the project in CI)")
    return path


@pytest.fixture(scope="session")
def ed_key() -> SigningKey:
    return SigningKey.generate(Alg.EdDSA)


@pytest.fixture(scope="session")
def es_key() -> SigningKey:
    return SigningKey.generate(Alg.ES256)


@pytest.fixture(scope="session")
def ring(ed_key: SigningKey, es_key: SigningKey) -> KeyRing:
    return KeyRing.of(ed_key.public(), es_key.public(), issuer="SH")


@pytest.fixture()
def green_claims() -> Claims:
    return Claims.dynamic(SUBJECT, Status.GREEN, NOW)


@pytest.fixture()
def sim() -> Iterator[IssuerSim]:
    """The issuer simulator of tests/verifier/sim.py with trust and status list versions 1 published."""
    s = IssuerSim(now=NOW)
    s.publish_trust(1)
    s.publish_status("SH", 1)
    yield s
    s.close()


@pytest.fixture()
def wall_sim() -> Iterator[IssuerSim]:
    """``sim`` at this machine's clock: for tests that drive a command-line tool, which reads the real clock."""
    s = IssuerSim(now=int(time.time()))
    s.publish_trust(1)
    s.publish_status("SH", 1)
    yield s
    s.close()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """One PostgreSQL server for the session (started only when a test asks for it)."""
    server = PgServer()
    server.start()
    yield server
    server.close()
