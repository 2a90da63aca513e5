"""Audited writes at city scale: concurrent ones share one transaction, one chained append and one commit,
each answered only once durable; a worker killed mid-burst loses nothing acknowledged; one node at a time
writes the audit checkpoint, which every node serves."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from issuer import IssuerService, Settings, create_app
from issuer.audit_chain import verify_chain
from issuer.cli import main
from issuer.errors import AlreadyEnrolled, Problem, StorageUnavailable
from issuer.keys.checkpoints import shared_checkpoint
from issuer.storage.sql import SqlStorage
from suishenma import DeviceKey, SigningKey
from testing.live_issuer import LiveIssuer

from .conftest import new_person, query, storage_of
from .test_audit import _cut_tail
from .test_city_scale import _wait, _workers

NOW = 1_790_000_000


def _enrol_in(store: SqlStorage, subject: str, may_go: threading.Event | None = None) -> None:
    """An audited write of the shared SQL's kind, held open until ``may_go`` (the group's leader waits there
    while others join)."""
    with store._write() as c:
        c.execute(
            "INSERT INTO subjects (subject, masked_name, masked_id, name_sealed, id_sealed, id_lookup, status,"
            " status_reason, created_at, updated_at) VALUES (?, '张*三', '3101**1234', ?, ?, ?, 'green', 'x', ?, ?)",
            (subject, b"n", b"i", subject.encode(), NOW, NOW),
        )
        store._audit(c, NOW, "t", "subject.enrol", subject, {})
        if may_go is not None:
            assert may_go.wait(30)
        if subject.startswith("bad"):
            raise AlreadyEnrolled()


def _joined(store: SqlStorage, n: int) -> bool:
    group = store.group_commit._open
    return group is not None and group.joined == n


def _subjects(store: SqlStorage) -> set[str]:
    return {str(r[0]) for r in query(store, "SELECT subject FROM subjects")}


def test_concurrent_audited_writes_share_one_commit_and_each_is_answered_once_durable(store: SqlStorage) -> None:
    may_go, answered = threading.Event(), []
    leader = threading.Thread(target=_enrol_in, args=(store, "lead", may_go))
    leader.start()
    _wait(lambda: _joined(store, 1), "the leader to open its group")

    def member(subject: str) -> None:
        _enrol_in(store, subject)
        answered.append(subject)

    members = [threading.Thread(target=member, args=(s,)) for s in ("m1", "m2")]
    for t in members:
        t.start()
    _wait(lambda: _joined(store, 3), "two more writes to join the group")
    time.sleep(0.05)  # the members could run their statements now; none may answer before the commit
    assert answered == [] and _subjects(store) == set()
    may_go.set()
    for t in [leader, *members]:
        t.join()
    assert sorted(answered) == ["m1", "m2"] and _subjects(store) == {"lead", "m1", "m2"}
    assert (store.group_commit.groups, store.group_commit.largest) == (1, 3)  # one commit for the three
    report = verify_chain(store.audit_rows(), store.audit_high_water())
    assert report.ok and report.rows == 3  # one chained append, three rows


def test_a_member_that_fails_is_undone_alone_with_its_own_reason(store: SqlStorage) -> None:
    may_go, errors = threading.Event(), []

    def member(subject: str) -> None:
        try:
            _enrol_in(store, subject)
        except AlreadyEnrolled as exc:
            errors.append(exc.problem)

    leader = threading.Thread(target=_enrol_in, args=(store, "lead", may_go))
    leader.start()
    _wait(lambda: _joined(store, 1), "the leader to open its group")
    members = [threading.Thread(target=member, args=(s,)) for s in ("bad1", "ok1")]
    for t in members:
        t.start()
    _wait(lambda: _joined(store, 3), "two more writes to join the group")
    may_go.set()
    for t in [leader, *members]:
        t.join()
    assert errors == [Problem.ID_NUMBER_ENROLLED]
    assert _subjects(store) == {"lead", "ok1"}  # the failed member's row is gone, the others' committed
    assert [r.target for r in store.audit_rows()] == ["lead", "ok1"]  # and so is its audit event
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok


def test_a_group_whose_commit_fails_fails_every_member_and_writes_nothing(
    store: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def append_fails(c: object, events: object) -> None:
        raise StorageUnavailable("lost at the commit")

    monkeypatch.setattr(store.group_commit, "_append", append_fails)
    may_go, reasons = threading.Event(), []

    def write(subject: str, gate: threading.Event | None = None) -> None:
        try:
            _enrol_in(store, subject, gate)
        except StorageUnavailable as exc:
            reasons.append(exc.problem)

    leader = threading.Thread(target=write, args=("lead", may_go))
    leader.start()
    _wait(lambda: _joined(store, 1), "the leader to open its group")
    member = threading.Thread(target=write, args=("m1",))
    member.start()
    _wait(lambda: _joined(store, 2), "a write to join the group")
    may_go.set()
    leader.join()
    member.join()
    assert reasons == [Problem.DATABASE_UNREACHABLE] * 2
    assert _subjects(store) == set() and store.audit_head()[0] == 0


def _phone() -> tuple[dict[str, object], list[dict[str, object]]]:
    def key() -> dict[str, object]:
        return dict(DeviceKey.of(SigningKey.generate()).to_jwk())

    return key(), [key() for _ in range(Settings().device_batch)]


def test_worker_killed_in_a_burst_of_phone_batches_loses_no_acknowledged_batch(
    home: Path, keys: dict[str, str]
) -> None:
    """Both workers take concurrent batch requests (groups form in each); one is killed with SIGKILL in the
    middle. Every batch answered 201 is stored with its audit row, and the chain and checkpoint verify."""
    auth = {"Authorization": f"Bearer {keys['mint']}"}
    enrolling = {"Authorization": f"Bearer {keys['enrol']}"}
    with LiveIssuer(home, args=("--workers", "2")) as server:
        with httpx.Client(base_url=server.url) as c:
            people = [c.post("/v1/subjects", json=new_person(), headers=enrolling).json()["subject"] for _ in range(8)]
        acknowledged: list[tuple[str, list[int]]] = []
        lock, stop = threading.Lock(), threading.Event()

        def writer(subject: str) -> None:
            phone, slot_keys = _phone()
            while not stop.is_set():
                try:  # a new connection each time, so both workers take requests
                    with httpx.Client(base_url=server.url, timeout=30) as c:
                        r = c.post(
                            f"/v1/subjects/{subject}/device-credentials",
                            json={"jwk": phone, "keys": slot_keys},
                            headers=auth,
                        )
                except httpx.HTTPError:
                    continue  # the killed worker's connection: not acknowledged
                if r.status_code == 201:
                    with lock:
                        acknowledged.append((subject, [c["status_index"] for c in r.json()["credentials"]]))

        threads = [threading.Thread(target=writer, args=(s,)) for s in people]
        for t in threads:
            t.start()
        _wait(lambda: len(acknowledged) >= 30, "batches to be acknowledged", limit=60)
        os.kill(_workers(server)[0], signal.SIGKILL)
        count = len(acknowledged)
        _wait(lambda: len(acknowledged) >= count + 30, "batches to go on after the kill", limit=60)
        stop.set()
        for t in threads:
            t.join()
    store = storage_of(home)
    try:
        held = {(str(s), int(str(i))) for s, i in query(store, "SELECT subject, idx FROM offline_codes")}
        audited = {
            (r.target, tuple(json.loads(r.detail)["indices"])) for r in store.audit_rows() if r.action == "device.batch"
        }
        for subject, indices in acknowledged:
            assert {(subject, i) for i in indices} <= held  # every acknowledged credential's entry is stored
            assert (subject, tuple(indices)) in audited  # with its audit row
        assert verify_chain(store.audit_rows(), store.audit_high_water()).ok
    finally:
        store.close()
    assert main(["--dir", str(home), "audit", "verify"]) == 0  # the chain and the checkpoint hold


def test_one_node_at_a_time_writes_checkpoints_and_every_node_serves_the_same(
    settings: Settings, keys: dict[str, str]
) -> None:
    now = int(time.time())  # after the commands that made the keys, which checkpointed at the time they ran
    store_a, store_b = storage_of(settings.base_dir), storage_of(settings.base_dir)
    node_a, node_b = IssuerService(settings, store_a), IssuerService(settings, store_b)
    try:
        first = node_a.anchor.write(now, keep_lease=True)
        assert first is not None
        store_a.audit_event("test.event", "x", {}, now, "t")  # the log grows
        held = node_b.anchor.write(now + 1, keep_lease=True)  # node A holds the lease: B signs nothing
        assert held is not None and (held.seq, held.issued_at) == (first.seq, first.issued_at)
        grown = node_a.anchor.write(now + 2, keep_lease=True)
        assert grown is not None and grown.seq == first.seq + 1
        shared = shared_checkpoint(settings, store_b)
        assert shared is not None and (shared.seq, shared.head_hex) == store_b.audit_head()
        node_a.anchor.release(now + 3)  # node A stops: B takes over at once
        store_a.audit_event("test.event", "y", {}, now + 3, "t")
        taken = node_b.anchor.write(now + 4, keep_lease=True)
        assert taken is not None and taken.seq == grown.seq + 1
    finally:
        store_a.close()
        store_b.close()
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        assert one.get("/v1/audit/checkpoint").content == two.get("/v1/audit/checkpoint").content


def test_checkpoint_held_in_the_database_catches_a_cut_tail_when_the_file_is_gone(
    settings: Settings, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    now = int(time.time())  # after the commands that made the keys, which checkpointed at the time they ran
    store = storage_of(settings.base_dir)
    service = IssuerService(settings, store)
    for n in range(3):
        store.audit_event("test.event", f"e{n}", {}, now + n, "t")
    cp = service.anchor.write(now + 5)
    assert cp is not None
    store.close()
    settings.audit_checkpoint_path.unlink()
    _cut_tail(settings.base_dir, cp.seq - 1)
    capsys.readouterr()
    assert main(["--dir", str(settings.base_dir), "audit", "verify"]) == 1
    assert f"the database ends at row {cp.seq - 1} but a checkpoint signed at {now + 5}" in capsys.readouterr().out


def test_status_batch_changes_the_codes_of_people_named_once_together_and_of_people_named_twice_in_order(
    store: SqlStorage,
) -> None:
    from issuer.storage import DeviceIssue, StatusChange

    once, twice = "00000000000000a1", "00000000000000a2"
    store.subject_create(once, "张小三", "310101199001011234", NOW, "t")
    store.subject_create(twice, "李小四", "310101199001015678", NOW, "t")
    paper_once = store.offline_issue(once, "k", NOW + 86400, NOW, "t")
    paper_twice = store.offline_issue(twice, "k", NOW + 86400, NOW, "t")
    slots = ((NOW, NOW + 3600), (NOW + 3600, NOW + 7200))
    phone = store.device_batch(DeviceIssue(once, "phone", "ES256", "k", slots, NOW, "t"), 5)
    changes = [
        StatusChange("red", "r1", subject=once),
        StatusChange("red", "r2", subject=twice),
        StatusChange("green", "r3", subject=twice),
    ]
    result = store.subject_set_status_many(changes, NOW + 1, "t", all_or_none=True)
    assert result.applied == 3 and result.failed == []
    states = dict(query(store, "SELECT idx, state FROM offline_codes"))
    assert states[paper_once] == 2 and states[paper_twice] == 0  # suspended; suspended then reinstated
    assert {states[i] for i in phone} == {1}  # the phone's live credentials revoked
    events = [json.loads(r.detail) for r in store.audit_rows() if r.action == "subject.status"]
    assert events == [
        {"from": "green", "to": "red", "reason": "r1", "until": None, "offline_codes": [paper_once],
         "device_indices": sorted(phone)},
        {"from": "green", "to": "red", "reason": "r2", "until": None, "offline_codes": [paper_twice]},
        {"from": "red", "to": "green", "reason": "r3", "until": None, "offline_codes": [paper_twice]},
    ]  # fmt: skip
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok
