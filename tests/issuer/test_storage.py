"""Storage, on both backends: the same behaviour from SQLite and PostgreSQL, private data sealed at rest,
batches all-or-none or per row, shared rate buckets and leases; then each backend's own details."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from issuer.audit_chain import verify_chain
from issuer.errors import AlreadyEnrolled, Conflict, NotFound, Problem, SealError
from issuer.keys.sealing import Sealer, load_sealer
from issuer.opening import open_storage
from issuer.settings import Settings
from issuer.storage import MintCount, PublishedList, StatusChange
from issuer.storage.sql import SqlStorage
from issuer.storage.sqlite import SQLiteStorage
from issuer.storage.sqlite_migrations import MIGRATIONS

from ..pg_server import PgServer

NAME, ID_NUMBER = "张小三", "31010119900101123x"
NOW = 1_790_000_000


def _subject(n: int) -> str:
    return f"{n:016x}"


def _enrol(store: SqlStorage, n: int, id_number: str | None = None) -> str:
    subject = _subject(n)
    store.subject_create(subject, NAME, id_number or f"310101{n:08d}1234", NOW, "t")
    return subject


def _dump(store: SqlStorage, backend: str, request: pytest.FixtureRequest) -> bytes:
    """Everything a backup holds: the SQLite file and its WAL, or pg_dump's output."""
    if isinstance(store, SQLiteStorage):
        return b"".join(p.read_bytes() for p in store.path.parent.glob(store.path.name + "*"))
    server: PgServer = request.getfixturevalue("pg")
    url = store.url  # type: ignore[attr-defined]
    return subprocess.run([str(server.bin / "pg_dump"), url], check=True, capture_output=True).stdout


def test_enrolled_person_reads_back_and_is_found_by_id_number(store: SqlStorage) -> None:
    subject = _enrol(store, 1, ID_NUMBER)
    rec = store.subject_get(subject)
    assert rec is not None and (rec.name, rec.id_number, rec.status) == (NAME, ID_NUMBER.upper(), "green")
    assert store.subject_by_id_number(" " + ID_NUMBER.upper() + " ") == subject  # normalised like enrolment
    with pytest.raises(AlreadyEnrolled) as err:
        store.subject_create(_subject(2), "王五", ID_NUMBER.upper(), NOW, "t")
    assert err.value.problem is Problem.ID_NUMBER_ENROLLED
    assert store.subject_get(_subject(2)) is None


def test_bulk_enrolment_is_sealed_and_audited_and_stores_none_on_a_duplicate(store: SqlStorage) -> None:
    people = [(_subject(n), NAME, f"310101{n:08d}1234") for n in range(1, 4)]
    store.subject_create_many(people, NOW, "t")
    rec = store.subject_get(_subject(2))
    assert rec is not None and (rec.name, rec.id_number, rec.masked_name) == (NAME, people[1][2], "张*三")
    assert store.subject_by_id_number(people[2][2]) == _subject(3)
    with pytest.raises(AlreadyEnrolled) as err:  # one of them enrolled already
        store.subject_create_many(
            [(_subject(4), NAME, "310101000000041234"), (_subject(5), NAME, people[0][2])], NOW, "t"
        )
    assert err.value.problem is Problem.ID_NUMBER_ENROLLED
    with pytest.raises(AlreadyEnrolled) as err:  # one number twice in the batch (normalised alike)
        store.subject_create_many(
            [(_subject(6), NAME, ID_NUMBER), (_subject(7), NAME, f" {ID_NUMBER.upper()}")], NOW, "t"
        )
    assert err.value.problem is Problem.ID_NUMBER_ENROLLED
    assert all(store.subject_get(_subject(n)) is None for n in (4, 5, 6, 7))
    assert [r.target for r in store.audit_rows()] == [_subject(n) for n in range(1, 4)]
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok


def test_copy_to_postgres_moves_every_row_and_keeps_the_chain(
    store: SqlStorage, request: pytest.FixtureRequest
) -> None:
    from issuer.storage import DeviceIssue, ScanRecord
    from issuer.storage.copy import copy_to
    from issuer.storage.postgres import PostgresStorage
    from issuer.storage.sql_base import TABLES

    a, b = _enrol(store, 1, ID_NUMBER), _enrol(store, 2)
    store.signing_key_add("ab12cd34", "EdDSA", "keys/k.pem", NOW, "t")
    store.offline_issue(a, "ab12cd34", NOW + 86400, NOW, "t")
    issue = DeviceIssue(b, "thumb", "ES256", "ab12cd34", ((NOW, NOW + 3600), (NOW + 3600, NOW + 7200)), NOW, "t")
    device_indices = store.device_batch(issue, 3, capacity=1024)
    store.subject_set_status(a, "red", "fever", None, NOW + 1, "t")
    store.list_put(PublishedList("status:SH", 1, b"body", '"e"', NOW, NOW + 60, 0, 8), "t")
    store.scan_logs_add("gate-1", [ScanRecord(1, NOW, "venue", "ALLOW", "ok", a, "SH")], NOW)
    store.mint_counts_add([MintCount("mint", NOW - NOW % 60, "ab12cd34", "venue", 3)])
    source_rows = {t: sum(len(rows) for rows in store.table_rows(t, chunk=2)) for t in TABLES}
    server: PgServer = request.getfixturevalue("pg")
    target = PostgresStorage(server.create_database(), store.sealer)
    try:
        report = copy_to(store, target)
        assert report.rows == source_rows and report.audit_head == store.audit_head()[1]
        held = target.subject_get(a)
        assert held is not None and (held.name, held.status) == (NAME, "red")  # sealed rows open with the same key
        assert target.subject_by_id_number(ID_NUMBER) == a
        # the live entries came along: new ones are drawn among the free indices only
        fresh = target.device_batch(issue, 3, capacity=1024)
        assert len(fresh) == 2 and not set(fresh) & set(device_indices)
        assert target.offline_issue(b, "ab12cd34", NOW + 86400, NOW, "t", 1024) not in {*device_indices, *fresh}
        assert target.audit_high_water() == store.audit_high_water() + 2
        with pytest.raises(Conflict) as err:
            copy_to(store, target)  # never into a database in use
        assert err.value.problem is Problem.COPY_TARGET_NOT_EMPTY
    finally:
        target.close()


def test_database_dump_reveals_no_name_and_no_id_number(
    store: SqlStorage, backend: str, request: pytest.FixtureRequest
) -> None:
    _enrol(store, 1, ID_NUMBER)
    store.subject_set_status_many(
        [StatusChange("red", "test", id_number=ID_NUMBER)], NOW + 1, "t", all_or_none=True
    )  # a look-up by ID number leaves nothing behind either
    dump = _dump(store, backend, request)
    assert len(dump) > 1000  # the dump is real
    for secret in (NAME, ID_NUMBER.upper(), ID_NUMBER, "19900101"):
        assert secret.encode() not in dump, secret
    assert "张*三".encode() in dump  # the masked forms codes need are kept


def test_sealed_field_moved_to_another_person_does_not_open(store: SqlStorage) -> None:
    a, b = _enrol(store, 1), _enrol(store, 2)
    (_, name_a, _), (_, _, id_b) = store.subjects_sealed("", 10)
    store.subjects_reseal([(b, name_a, id_b)])  # a's sealed name copied onto b's row
    rec_a, rec_b = store.subject_get(a), store.subject_get(b)
    assert rec_a is not None and rec_a.name == NAME and rec_b is not None and rec_b.masked_name == "张*三"
    with pytest.raises(SealError) as err:
        rec_b.name  # noqa: B018  # opened when read
    assert err.value.problem is Problem.SEAL_DOES_NOT_OPEN and "moved from another row" in str(err.value)


def test_every_state_change_is_chained_in_the_audit_log(store: SqlStorage) -> None:
    subject = _enrol(store, 1)
    store.subject_set_status(subject, "red", "fever", None, NOW + 1, "t")
    index = store.offline_issue(subject, "ab12cd34", NOW + 86400, NOW + 2, "t")
    store.offline_set_state(index, 1, NOW + 3, "t")
    report = verify_chain(store.audit_rows(), store.audit_high_water())
    assert report.ok and report.rows == 4 == store.audit_head()[0] == store.audit_high_water()
    assert [r.action for r in store.audit_rows()] == [
        "subject.enrol",
        "subject.status",
        "offline.issue",
        "offline.state",
    ]


def test_concurrent_writers_keep_one_audit_chain(store: SqlStorage) -> None:
    subjects = [_enrol(store, n) for n in range(1, 5)]

    def writer(subject: str) -> None:
        for i in range(10):
            store.subject_set_status(subject, ("green", "yellow", "red")[i % 3], f"r{i}", None, NOW + i, "t")

    threads = [threading.Thread(target=writer, args=(s,)) for s in subjects]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify_chain(store.audit_rows(), store.audit_high_water())
    assert report.ok and report.rows == 4 + 40


def test_batch_with_an_unknown_person_applies_nothing_when_all_or_none(store: SqlStorage) -> None:
    known = _enrol(store, 1, ID_NUMBER)
    head = store.audit_head()
    changes = [
        StatusChange("red", "a", subject=known),
        StatusChange("red", "b", subject=_subject(99)),
        StatusChange("yellow", "c", id_number="310101000000001234"),
    ]
    result = store.subject_set_status_many(changes, NOW + 1, "t", all_or_none=True)
    assert result.applied == 0 and result.failed == [(1, "unknown_subject"), (2, "unknown_id_number")]
    rec = store.subject_get(known)
    assert rec is not None and rec.status == "green" and store.audit_head() == head


def test_batch_per_row_applies_the_good_rows_in_order(store: SqlStorage) -> None:
    a, b = _enrol(store, 1, ID_NUMBER), _enrol(store, 2)
    index = store.offline_issue(b, "ab12cd34", NOW + 86400, NOW, "t")
    changes = [
        StatusChange("red", "a", subject=a),
        StatusChange("red", "b", subject=_subject(99)),
        StatusChange("yellow", "c", id_number=ID_NUMBER.lower()),  # the same person again, by ID number
        StatusChange("red", "d", subject=b),
    ]
    result = store.subject_set_status_many(changes, NOW + 1, "t", all_or_none=False)
    assert result.applied == 3 and result.failed == [(1, "unknown_subject")]
    rec_a, rec_b = store.subject_get(a), store.subject_get(b)
    assert rec_a is not None and rec_a.status == "yellow" and rec_a.status_reason == "c"
    assert rec_b is not None and rec_b.status == "red"
    code = store.offline_get(index)
    assert code is not None and code.state == 2  # b's paper code suspended, as a single change would
    details = [r.detail for r in store.audit_rows() if r.action == "subject.status"]
    assert '"from":"red"' in details[1] and '"to":"yellow"' in details[1]  # the batch's own order
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok


def test_status_of_unknown_subject_is_not_found_and_changes_nothing(store: SqlStorage) -> None:
    head = store.audit_head()
    with pytest.raises(NotFound) as err:
        store.subject_set_status(_subject(5), "red", "x", None, NOW, "t")
    assert err.value.problem is Problem.NO_SUBJECT
    assert store.audit_head() == head


def test_mint_counters_add_up_across_flushes(store: SqlStorage) -> None:
    store.mint_counts_add([MintCount("app", NOW - 60, "k1", "venue", 3), MintCount("app", NOW, "k1", "venue", 1)])
    store.mint_counts_add([MintCount("app", NOW, "k1", "venue", 2), MintCount("gate", NOW, "k1", "transit", 5)])
    assert store.mint_counts(since=NOW) == [
        MintCount("app", NOW, "k1", "venue", 3),
        MintCount("gate", NOW, "k1", "transit", 5),
    ]
    assert store.audit_head()[0] == 0  # counted, not audited


def test_shared_rate_bucket_refills_with_time_and_never_past_its_burst(store: SqlStorage) -> None:
    assert store.rate_take(7, 1.0, 2.0, 1.0, 1000.0) == (1.0, 1.0)
    assert store.rate_take(7, 1.0, 2.0, 5.0, 1000.0) == (1.0, 0.0)
    assert store.rate_take(7, 1.0, 2.0, 1.0, 1000.5) == (0.0, 0.5)  # half a token is not a request
    assert store.rate_take(7, 1.0, 2.0, 1.0, 1001.0) == (1.0, 0.0)
    assert store.rate_take(7, 1.0, 2.0, 9.0, 9000.0) == (2.0, 0.0)  # idle time refills the burst, no more
    assert store.rate_take(7, 1.0, 2.0, 1.0, 8000.0) == (0.0, 0.0)  # a clock behind the bucket adds nothing
    assert store.rate_take(8, 1.0, 2.0, 1.0, 9000.0) == (1.0, 1.0)  # buckets are per key


def test_lease_has_one_holder_until_it_expires_or_is_released(store: SqlStorage) -> None:
    assert store.lease("build:status:SH", "a", 100.0, 10.0)
    assert not store.lease("build:status:SH", "b", 105.0, 10.0)
    assert store.lease("build:status:SH", "a", 105.0, 10.0)  # its holder renews it
    assert store.lease("build:status:SH", "b", 116.0, 10.0)  # expired: taken over
    assert store.lease("build:status:SH", "b", 117.0, -1.0)  # released
    assert store.lease("build:status:SH", "a", 117.5, 10.0)


def test_list_version_published_twice_is_refused(store: SqlStorage) -> None:
    lst = PublishedList("status:SH", 3, b"body", '"e"', NOW, NOW + 60, 0, 1024)
    store.list_put(lst, "t")
    with pytest.raises(Conflict) as err:
        store.list_put(lst, "t")  # another worker built the same version: the first one stays
    assert err.value.problem is Problem.LIST_VERSION_NOT_ABOVE
    held = store.list_get("status:SH")
    assert held is not None and held.version == 3 and held.body == b"body"


def test_scan_logs_and_devices_work_alike(store: SqlStorage) -> None:
    from issuer.storage import DeviceIssue, ScanRecord

    subject = _enrol(store, 1)
    slots = tuple((NOW + i * 3600, NOW + (i + 1) * 3600) for i in range(4))
    issue = DeviceIssue(subject, "thumb", "ES256", "ab12cd34", slots, NOW, "t")
    first = store.device_batch(issue, 3, capacity=1024)
    again = store.device_batch(issue, 3, capacity=1024)
    assert len(set(first + again)) == 8 and all(1 <= i < 1024 for i in first + again)  # each a new random index
    store.subject_set_status(subject, "red", "x", None, NOW + 1, "t")
    snap = store.status_snapshot("status:SH")
    assert {(i, 1) for i in first + again} <= set(snap.nonvalid) and snap.max_index == max(first + again)
    rec = ScanRecord(1, NOW, "venue", "ALLOW", "ok", subject, "SH")
    assert store.scan_logs_add("gate-1", [rec, rec], NOW).accepted == 1
    assert store.scan_logs_add("gate-1", [rec], NOW).duplicates == 1 and store.scan_log_count() == 1


# --- SQLite only ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_schema_is_migrated_once_and_recorded(tmp_path: Path, backend: str) -> None:
    db = tmp_path / "i.db"
    sealer = Sealer.generate()
    SQLiteStorage(db, sealer).close()
    SQLiteStorage(db, sealer).close()  # reopening applies nothing twice
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def _legacy_database(db: Path, rows: list[tuple[str, str]]) -> None:
    """A database as the version before sealing left it: names and ID numbers in clear."""
    conn = sqlite3.connect(db)
    for step in MIGRATIONS[:3]:
        assert isinstance(step, str)
        conn.executescript(step)
    conn.execute("PRAGMA user_version = 3")
    for n, (name, id_number) in enumerate(rows):
        conn.execute(
            "INSERT INTO subjects VALUES (?, ?, ?, 'green', '', NULL, 0, 0)", (_subject(n + 1), name, id_number)
        )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_database_from_before_sealing_is_sealed_on_open_and_keeps_no_clear_text(tmp_path: Path, backend: str) -> None:
    db = tmp_path / "var" / "issuer.db"
    db.parent.mkdir()
    _legacy_database(db, [(NAME, ID_NUMBER.upper()), ("李四", "310101199202021234")])
    assert NAME.encode() in db.read_bytes()
    store = open_storage(Settings(base_dir=tmp_path))  # makes keys/data.key: nothing was sealed before
    rec = store.subject_get(_subject(1))
    assert rec is not None and (rec.name, rec.id_number) == (NAME, ID_NUMBER.upper())
    assert store.subject_by_id_number(ID_NUMBER) == _subject(1)
    store.close()
    files = b"".join(p.read_bytes() for p in db.parent.glob("issuer.db*"))
    for secret in (NAME, "李四", ID_NUMBER.upper(), "310101199202021234"):
        assert secret.encode() not in files, secret  # vacuumed: no free page keeps the old text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_database_enrolled_twice_before_the_id_check_still_opens(tmp_path: Path, backend: str) -> None:
    db = tmp_path / "var" / "issuer.db"
    db.parent.mkdir()
    _legacy_database(db, [("张三", "310101199001011234"), ("张三", "310101199001011234")])
    store = open_storage(Settings(base_dir=tmp_path))
    assert store.subject_by_id_number("310101199001011234") in (_subject(1), _subject(2))
    with pytest.raises(AlreadyEnrolled) as err:
        store.subject_create("00000000000000cc", "王五", "310101199001011234", 0, "t")
    assert err.value.problem is Problem.ID_NUMBER_ENROLLED
    store.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_missing_data_key_beside_sealed_data_is_an_error_never_a_new_key(tmp_path: Path, backend: str) -> None:
    settings = Settings(base_dir=tmp_path)
    store = open_storage(settings, create=True)
    store.subject_create(_subject(1), NAME, ID_NUMBER, NOW, "t")
    store.close()
    (tmp_path / "keys" / "data.key").unlink()
    with pytest.raises(SealError) as err:
        open_storage(settings)
    assert err.value.problem is Problem.DATA_KEY_MISSING
    assert "no data key" in str(err.value) and not (tmp_path / "keys" / "data.key").exists()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_data_key_file_is_private_and_damage_is_named(tmp_path: Path, backend: str) -> None:
    sealer = load_sealer(tmp_path, create=True)
    path = tmp_path / "data.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_sealer(tmp_path).keys == sealer.keys
    path.write_text('{"current": 2, "keys": {"1": "AAAA"}, "lookup": "AAAA"}')
    with pytest.raises(SealError) as err:
        load_sealer(tmp_path)
    assert err.value.problem is Problem.DATA_KEY_DAMAGED and "damaged" in str(err.value)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_background_checkpointer_runs_and_keeps_the_wal_checkpointed(tmp_path: Path, backend: str) -> None:
    store = SQLiteStorage(tmp_path / "i.db", Sealer.generate())
    store.checkpoint_in_background(interval=0.01)
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # requests never checkpoint
    checkpointer = store.checkpointer
    assert checkpointer is not None and checkpointer.is_alive()
    for i in range(1500):
        store.audit_event("test.event", f"{i:016x}", {"i": i}, NOW, "t")
    written = store.audit_head()[0]
    for _ in range(1000):  # the thread's own checkpoints, observed; the bounds only stop a hang
        checkpointer.checkpointed.clear()
        assert checkpointer.checkpointed.wait(30), "the background checkpointer is not running"
        busy, frames, done = checkpointer.last or (1, 0, 0)
        if busy == 0 and frames > 0 and done == frames:
            break
    assert busy == 0 and frames > 0 and done == frames  # the thread caught up with every write
    report = verify_chain(store.audit_rows(), store.audit_high_water())
    assert report.ok and report.rows == written == 1500
    store.close()
    assert not checkpointer.is_alive()
    wal = tmp_path / "i.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and removed on a clean stop


@pytest.mark.parametrize("backend", ["postgres"])
def test_url_naming_a_dead_host_and_the_primary_reaches_the_primary(backend: str, pg: PgServer) -> None:
    """What a failover setup relies on: libpq tries the hosts in turn and keeps the one that takes writes."""
    from issuer.storage.postgres import PostgresStorage

    url = pg.create_database()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # a port nothing listens on
    port = dead.getsockname()[1]
    dead.close()
    name = url.rsplit("/", 1)[1]
    both = f"postgresql://suishenma@127.0.0.1:{port},127.0.0.1:{pg.port}/{name}?target_session_attrs=read-write"
    store = PostgresStorage(both, Sealer.generate())
    _enrol(store, 1)
    assert store.subject_get(_subject(1)) is not None
    store.close()


def test_status_list_indices_are_drawn_at_random_and_reused_only_after_their_holders_expired(store: SqlStorage) -> None:
    """No index names two live credentials, and an index says nothing about who held it before."""
    from issuer.storage import DeviceIssue
    from issuer.storage.records import REUSE_AFTER_S

    people = [_enrol(store, n) for n in range(1, 4)]
    hour = ((NOW, NOW + 3600),)
    held: dict[int, str] = {}
    for n in range(64):
        subject = people[n % 3]
        (index,) = store.device_batch(DeviceIssue(subject, f"phone{n}", "ES256", "k", hour, NOW, "t"), 100, 64)
        assert index not in held  # never two live entries
        held[index] = subject
    # more than its 63 places: the list grew into its next half
    assert len(held) == 64 and max(held) < 128 and any(i >= 64 for i in held)
    # not handed out in order: the first indices are not 1, 2, 3, ...
    assert list(held)[:10] != sorted(list(held)[:10])
    # once every holder expired (and an hour more), the places are free again, cleared
    later = NOW + 3600 + REUSE_AFTER_S
    store.subject_set_status(people[0], "red", "x", None, NOW + 1, "t")
    reused = set()
    for n in range(40):
        issue = DeviceIssue(people[1], f"later{n}", "ES256", "k", ((later, later + 3600),), later, "t")
        reused |= set(store.device_batch(issue, 100, 64))
    assert reused & set(held)
    snap = store.status_snapshot("status:SH")
    assert not {i for i, _ in snap.nonvalid} & reused  # a reused index starts valid, whatever it was before
