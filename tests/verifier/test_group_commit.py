"""Verdicts committed in groups (the local service): durable before they are answered, one gate opening per
transit code even when its presentations land in one group, and a failed commit failing its whole group."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from suishenma import Status
from verifier import Decision, VerdictReason
from verifier.store import DB_NAME, GroupCommitter, ScanArgs

from .conftest import MakeVerifier
from .sim import IssuerSim


def _scans(path: object) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)  # type: ignore[arg-type]
    try:
        return conn.execute("SELECT decision, reason FROM scans ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_one_transit_code_presented_many_times_in_one_group_opens_one_gate(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    v = make_verifier("transit")
    code = sim.code()
    committer = GroupCommitter(v.store)

    async def burst() -> list[object]:
        tasks = [asyncio.ensure_future(v.verify_grouped(code, committer, now=sim.now + 1)) for _ in range(12)]
        await asyncio.sleep(0)  # each decides and queues its record
        committer.start()  # so the twelve share the first commit
        return await asyncio.gather(*tasks)

    verdicts = asyncio.run(burst())
    committer.stop()
    decisions = [(d.decision, d.reason) for d in verdicts]  # type: ignore[attr-defined]
    assert decisions.count((Decision.ALLOW, VerdictReason.OK)) == 1
    assert decisions.count((Decision.DENY, VerdictReason.REPLAYED)) == 11
    assert committer.largest == 12  # one commit (one fsync) for the twelve, the replay check inside it
    held = _scans(v.state_dir / DB_NAME)  # every answered verdict was already on disk
    assert held.count(("ALLOW", "ok")) == 1 and held.count(("DENY", "replayed")) == 11


def test_verdicts_from_grouped_and_direct_paths_agree(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    grouped, direct = make_verifier("venue", name="a"), make_verifier("venue", name="b")
    committer = GroupCommitter(grouped.store)
    committer.start()
    for text in (sim.code(), "SM1:NOT-A-CODE", "", sim.code(Status.RED)):
        g = asyncio.run(grouped.verify_grouped(text, committer, now=sim.now + 1))
        d = direct.verify(text, now=sim.now + 1)
        assert (g.decision, g.reason, g.display) == (d.decision, d.reason, d.display)
    committer.stop()


class _FullDisk:
    def record_group(self, group: list[ScanArgs]) -> list[bool]:
        raise sqlite3.OperationalError("database or disk is full")


def test_a_failed_commit_fails_every_verdict_of_its_group() -> None:
    committer = GroupCommitter(_FullDisk())  # type: ignore[arg-type]
    futures = [committer.submit((1, "gate-1", "venue", "ALLOW", "ok", None, None, None)) for _ in range(3)]
    committer.start()
    for f in futures:
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            f.result(timeout=10)
    committer.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        committer.submit((1, "gate-1", "venue", "ALLOW", "ok", None, None, None))
