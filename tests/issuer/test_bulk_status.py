"""Status changes in bulk: the batch endpoint (all or nothing) and ``status import`` (per row, resumable)."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from issuer import status_import
from issuer.audit_chain import verify_chain
from issuer.cli import main
from issuer.errors import InputError, Problem
from issuer.service import IssuerService
from issuer.status_import import BATCH, file_digest, parse_row

from .conftest import bearer, enrol, new_person, query, storage_of


def _status(client: TestClient, key: str, subject: str) -> str:
    status: str = client.get(f"/v1/subjects/{subject}", headers=bearer(key)).json()["status"]
    return status


def test_batch_by_subject_and_by_id_number_applies_and_audits_each_change(
    client: TestClient, keys: dict[str, str]
) -> None:
    person = new_person()
    a, b = enrol(client, keys["enrol"], person), enrol(client, keys["enrol"])
    held = client.get("/v1/status-lists/SH").headers["x-list-version"]
    body = {
        "changes": [
            {"subject": a, "status": "red", "reason": "test"},
            {"id_number": person["id_number"], "status": "yellow", "reason": "again"},
            {"subject": b, "status": "red", "valid_until": int(time.time()) + 3600},
        ]
    }
    r = client.post("/v1/status-updates", json=body, headers=bearer(keys["status"]))
    assert r.status_code == 200 and r.json() == {"applied": 3}
    assert (_status(client, keys["status"], a), _status(client, keys["status"], b)) == ("yellow", "red")
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    actions = [r[0] for r in query(store, "SELECT action FROM audit WHERE action = 'subject.status'")]
    assert len(actions) == 3 and verify_chain(store.audit_rows(), store.audit_high_water()).ok
    assert client.get("/v1/status-lists/SH").headers["x-list-version"] == held  # no paper code changed


def test_batch_naming_an_unknown_person_applies_nothing(client: TestClient, keys: dict[str, str]) -> None:
    a = enrol(client, keys["enrol"])
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    head = store.audit_head()
    body = {
        "changes": [
            {"subject": a, "status": "red"},
            {"subject": "00000000000000ff", "status": "red"},
            {"id_number": "999999999999999999", "status": "red"},
        ]
    }
    r = client.post("/v1/status-updates", json=body, headers=bearer(keys["status"]))
    assert r.status_code == 422 and r.json()["error"] == "batch_refused" and r.json()["message_zh"]
    assert r.json()["detail"] == {
        "failed": [{"index": 1, "reason": "unknown_subject"}, {"index": 2, "reason": "unknown_id_number"}],
        "count": 2,
    }
    assert _status(client, keys["status"], a) == "green" and store.audit_head() == head


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": "00000000000000aa", "id_number": "1234", "status": "red"}, "body.changes.0"),
        ({"status": "red"}, "body.changes.0"),
        ({"subject": "not-a-subject", "status": "red"}, "body.changes.0.subject"),
        ({"subject": "00000000000000aa", "status": "blue"}, "body.changes.0.status"),
        ({"subject": "00000000000000aa", "status": "red", "reason": "a\u202eb"}, "body.changes.0.reason"),
    ],
)
def test_batch_with_a_malformed_change_is_422_naming_it(
    client: TestClient, keys: dict[str, str], change: dict[str, object], field: str
) -> None:
    r = client.post("/v1/status-updates", json={"changes": [change]}, headers=bearer(keys["status"]))
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    assert any(p["field"] == field for p in r.json()["detail"]), r.json()["detail"]


def test_batch_takes_ten_thousand_changes_in_a_body_over_the_usual_cap_and_no_more(
    client: TestClient, keys: dict[str, str]
) -> None:
    change = {"id_number": "310101199001011234", "status": "red", "reason": "close contact, district health office"}
    body = json.dumps({"changes": [change] * 10_001}).encode()
    assert len(body) > 1 << 20  # above the body cap of every other route
    h = {**bearer(keys["status"]), "Content-Type": "application/json"}
    r = client.post("/v1/status-updates", content=body, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.changes"  # at most 10,000
    r = client.post("/v1/status-updates", json={"changes": [change] * 10_000}, headers=bearer(keys["status"]))
    assert r.status_code == 422 and r.json()["error"] == "batch_refused"  # read whole, then refused: not enrolled
    assert r.json()["detail"]["count"] == 10_000


def test_batch_with_a_lapsed_valid_until_is_a_conflict(client: TestClient, keys: dict[str, str]) -> None:
    a = enrol(client, keys["enrol"])
    body = {"changes": [{"subject": a, "status": "red", "valid_until": 1}]}
    r = client.post("/v1/status-updates", json=body, headers=bearer(keys["status"]))
    assert r.status_code == 409 and r.json()["error"] == "conflict" and _status(client, keys["status"], a) == "green"


def _csv(path: Path, rows: list[dict[str, object]], columns: tuple[str, ...]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    return path


def test_status_import_applies_good_rows_and_lists_the_refused_ones(
    home: Path, client: TestClient, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    person = new_person()
    a, b = enrol(client, keys["enrol"], person), enrol(client, keys["enrol"])
    rows: list[dict[str, object]] = [
        {"subject": a, "status": "red", "reason": "fever"},
        {"id_number": person["id_number"].lower(), "status": "yellow"},
        {"subject": "00000000000000ff", "status": "red"},
        {"subject": b, "status": "purple"},
        {"subject": b, "id_number": "1234", "status": "red"},
        {"id_number": "310101000000009999", "status": "red"},
        {"subject": b, "status": "red", "valid_until": 5},
    ]
    path = _csv(home / "changes.csv", rows, ("subject", "id_number", "status", "reason", "valid_until"))
    capsys.readouterr()
    assert main(["--dir", str(home), "status", "import", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["applied"] == 2 and summary["refused"] == 5
    assert summary["refused_by_reason"] == {
        "bad_status": 1,
        "bad_valid_until": 1,
        "two_people": 1,
        "unknown_id_number": 1,
        "unknown_subject": 1,
    }
    refused = list(csv.reader(Path(summary["refused_file"]).read_text(encoding="utf-8").splitlines()))
    assert [r[:2] for r in refused[1:]] == [
        ["4", "unknown_subject"],
        ["5", "bad_status"],
        ["6", "two_people"],
        ["7", "unknown_id_number"],
        ["8", "bad_valid_until"],
    ]
    assert "310101000000009999" not in Path(summary["refused_file"]).read_text()  # refusals hold no full ID
    assert (_status(client, keys["status"], a), _status(client, keys["status"], b)) == ("yellow", "green")


def test_status_import_resumes_after_the_last_committed_batch(
    home: Path, client: TestClient, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    subject = enrol(client, keys["enrol"])
    n = BATCH + 10
    rows: list[dict[str, object]] = [
        {"subject": subject, "status": ("yellow", "red")[i % 2], "reason": f"r{i}"} for i in range(n)
    ]
    path = _csv(home / "big.csv", rows, ("subject", "status", "reason"))
    store = storage_of(home)
    calls = {"n": 0}
    real = IssuerService.set_statuses

    def interrupted(self: object, *a: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C during the second batch
        return real(self, *a, **kw)  # type: ignore[arg-type]

    IssuerService.set_statuses = interrupted  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            main(["--dir", str(home), "status", "import", str(path)])
    finally:
        IssuerService.set_statuses = real  # type: ignore[method-assign]
    audited = len(query(store, "SELECT 1 FROM audit WHERE action = 'subject.status'"))
    assert audited == BATCH  # the first batch committed, the second did not
    capsys.readouterr()
    assert main(["--dir", str(home), "status", "import", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed_at_line"] == BATCH + 1 and summary["rows_read"] == 10 and summary["applied"] == n
    assert len(query(store, "SELECT 1 FROM audit WHERE action = 'subject.status'")) == n  # none twice
    assert main(["--dir", str(home), "status", "import", str(path), "--json"]) == 0  # done: nothing again
    assert json.loads(capsys.readouterr().out)["rows_read"] == 0
    assert _status(client, keys["status"], subject) == ("yellow", "red")[(n - 1) % 2]
    store.close()


def test_status_import_refuses_a_file_without_the_columns(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = home / "x.csv"
    path.write_text("who,colour\n00000000000000aa,red\n", encoding="utf-8")
    refused = home / "x.csv.refused.csv"
    refused.write_text("line,reason\n7,kept from the last run\n", encoding="utf-8")
    before = refused.read_bytes()
    assert main(["--dir", str(home), "status", "import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "must name the columns: status, and subject or id_number" in err and "第一行须写明列名" in err
    assert refused.read_bytes() == before and sorted(p.name for p in home.glob("*refused*")) == [refused.name]


def test_row_parser_names_each_problem() -> None:
    now = 1_790_000_000
    assert parse_row({"subject": "00000000000000aa", "status": "RED"}, now) != "bad_status"
    assert parse_row({"subject": "00000000000000aa", "status": ""}, now) == "bad_status"
    assert parse_row({"status": "red"}, now) == "no_person"
    assert parse_row({"subject": "xyz", "status": "red"}, now) == "bad_subject"
    assert parse_row({"id_number": "12-34", "status": "red"}, now) == "bad_id_number"
    assert parse_row({"subject": "00000000000000aa", "status": "red", "reason": "x" * 201}, now) == "bad_reason"
    assert parse_row({"subject": "00000000000000aa", "status": "red", "reason": "a\x00"}, now) == "bad_reason"
    assert parse_row({"subject": "00000000000000aa", "status": "red", "valid_until": "1e9"}, now) == "bad_valid_until"
    assert (
        parse_row({"subject": "00000000000000aa", "status": "red", "valid_until": str(now)}, now) == "bad_valid_until"
    )


@pytest.fixture()
def open_umask() -> Iterator[None]:
    """The usual umask 022, under which files are born readable by every local user."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _run(home: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["--dir", str(home), "status", "import", str(path), "--json"]) == 0
    summary: dict[str, object] = json.loads(capsys.readouterr().out)
    return summary


def test_refused_rows_file_shows_no_full_id_number_in_any_column_and_is_private_from_its_creation(
    home: Path,
    client: TestClient,
    keys: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    open_umask: None,
) -> None:
    ids = ["310101199001011234", "32010220000101567X", "330102198807071111", "340102197001019999"]
    rows: list[dict[str, object]] = [
        {"subject": ids[0], "status": "red"},  # an ID number in the subject column
        {"id_number": ids[1] + "-", "status": "red"},  # not an ID number by our rules, yet one
        {"id_number": "x", "status": ids[2]},  # in the status column
        {"id_number": ids[3], "status": "red"},  # not enrolled
    ]
    path = _csv(home / "changes.csv", rows, ("subject", "id_number", "status"))
    refused = home / "changes.csv.refused.csv"
    modes: list[int] = []
    real = IssuerService.set_statuses

    def watched(self: object, *a: object, **kw: object) -> object:  # while the refusals are being written
        modes.extend(stat.S_IMODE(f.stat().st_mode) for f in home.iterdir() if "refused" in f.name)
        return real(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(IssuerService, "set_statuses", watched)
    summary = _run(home, path, capsys)
    assert summary["refused"] == 4 and modes and set(modes) == {0o600}
    assert stat.S_IMODE(refused.stat().st_mode) == 0o600
    text = refused.read_text(encoding="utf-8")
    for number in ids:
        assert number not in text and number.lower() not in text, number
    listed = list(csv.reader(text.splitlines()))
    assert listed[1] == ["2", "bad_subject", "*" * 18, "", "red"]
    assert listed[4] == ["5", "unknown_id_number", "", "3401**********9999", "red"]


def test_invalid_utf8_file_is_refused_naming_where_it_broke_and_leaves_the_previous_refusals(
    home: Path, client: TestClient, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    subject = enrol(client, keys["enrol"])
    path = home / "changes.csv"
    good = f"subject,status\n{subject},red\n00000000000000ff,red\n".encode()
    path.write_bytes(good + "0000000000000001,red,\u6e56".encode("utf-8")[:-1] + b"\n")  # a character cut short
    refused = home / "changes.csv.refused.csv"
    refused.write_text("line,reason\n7,kept from the last run\n", encoding="utf-8")
    before = refused.read_bytes()
    capsys.readouterr()
    assert main(["--dir", str(home), "status", "import", str(path)]) == 1
    err = capsys.readouterr().err
    offset = len(good) + len("0000000000000001,red,")
    assert f"line 4 (byte offset {offset} in the file) is not valid UTF-8" in err and "不是有效的 UTF-8" in err
    assert refused.read_bytes() == before and sorted(p.name for p in home.glob("*refused*")) == [refused.name]
    assert _status(client, keys["status"], subject) == "green"  # nothing before the bad line applied either
    with pytest.raises(InputError) as exc:
        file_digest(path)
    assert exc.value.problem is Problem.CSV_NOT_UTF8


def test_utf8_check_names_the_line_and_offset_across_read_blocks(tmp_path: Path) -> None:
    block = 1 << 20
    head = b"a\n" * 1000 + b"x" * (block - 2001)  # a three-byte character straddles the first block's end
    text = head + "\u6e56".encode() + b"\nok\n"
    path = tmp_path / "big.csv"
    path.write_bytes(text)
    assert file_digest(path)[1] == 1002  # valid: split characters are joined again
    path.write_bytes(text + b"bad \xc3\x28\n")
    with pytest.raises(InputError) as exc:
        file_digest(path)
    assert exc.value.problem is Problem.CSV_NOT_UTF8
    assert f"line 1003 (byte offset {len(text) + 4} in the file)" in exc.value.message_en
    path.write_bytes(head + "\u6e56".encode()[:2])  # the file ends inside that character
    with pytest.raises(InputError) as exc:
        file_digest(path)
    assert exc.value.problem is Problem.CSV_NOT_UTF8 and f"(byte offset {len(head)} in" in exc.value.message_en


def test_refused_row_spanning_several_lines_is_named_by_the_line_it_starts_on(
    home: Path, client: TestClient, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    subject = enrol(client, keys["enrol"])
    rows: list[dict[str, object]] = [
        {"subject": "00000000000000ff", "status": "red", "reason": "first line\nsecond\nthird"},  # lines 2-4
        {"subject": subject, "status": "red"},
        {"subject": "\n00000000000000fe", "status": "purple"},  # lines 6-7
    ]
    path = _csv(home / "changes.csv", rows, ("subject", "status", "reason"))
    summary = _run(home, path, capsys)
    refused = list(csv.reader(Path(str(summary["refused_file"])).read_text(encoding="utf-8").splitlines()))
    assert [r[:2] for r in refused[1:]] == [["2", "bad_reason"], ["6", "bad_status"]]
    assert _status(client, keys["status"], subject) == "red"


def test_refusals_of_committed_batches_survive_an_interruption_and_the_rerun_adds_the_rest(
    home: Path,
    client: TestClient,
    keys: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subject = enrol(client, keys["enrol"])
    rows: list[dict[str, object]] = [
        {"subject": "00000000000000ff", "status": "red"},  # refused in the first batch, which commits
        {"subject": subject, "status": "yellow"},
        {"subject": subject, "status": "purple"},  # refused in the second, which is interrupted
        {"subject": subject, "status": "red"},
    ]
    path = _csv(home / "changes.csv", rows, ("subject", "status"))
    refused = home / "changes.csv.refused.csv"
    monkeypatch.setattr(status_import, "BATCH", 2)
    calls = {"n": 0}
    real = IssuerService.set_statuses

    def interrupted(self: object, *a: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(IssuerService, "set_statuses", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["--dir", str(home), "status", "import", str(path)])
    assert [r[:2] for r in csv.reader(refused.read_text(encoding="utf-8").splitlines())] == [
        ["line", "reason"],
        ["2", "unknown_subject"],
    ]
    monkeypatch.setattr(IssuerService, "set_statuses", real)
    summary = _run(home, path, capsys)
    assert summary["resumed_at_line"] == 3 and summary["refused"] == 2
    assert [r[:2] for r in csv.reader(refused.read_text(encoding="utf-8").splitlines())] == [
        ["line", "reason"],
        ["2", "unknown_subject"],
        ["4", "bad_status"],
    ]
    assert stat.S_IMODE(refused.stat().st_mode) == 0o600 and _status(client, keys["status"], subject) == "red"


_KILLED_IMPORT = """
import os, signal, sys
from issuer import status_import
from issuer.cli import main
from issuer.service import IssuerService

status_import.BATCH = 2
where = sys.argv[1]
real_set, real_write = IssuerService.set_statuses, status_import._RefusedFile.write_batch

def set_statuses(self, *a, **kw):
    if where == "before_the_first_commit":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real_set(self, *a, **kw)
    if where == "after_the_first_commit":
        os.kill(os.getpid(), signal.SIGKILL)
    return result

def write_batch(self, rows):
    real_write(self, rows)
    if where == "inside_the_transaction":  # written and fsynced, not committed yet
        os.kill(os.getpid(), signal.SIGKILL)

IssuerService.set_statuses = set_statuses
status_import._RefusedFile.write_batch = write_batch
main(sys.argv[2:])
"""


def _import_killed(home: Path, path: Path, where: str) -> None:
    """``status import`` in a process of its own, killed with SIGKILL at ``where`` (batches of two rows)."""
    args = [sys.executable, "-c", _KILLED_IMPORT, where, "--dir", str(home), "status", "import", str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _refused_rows(path: Path) -> list[list[str]]:
    return [r[:2] for r in csv.reader(path.read_text(encoding="utf-8").splitlines())]


def test_refusals_of_a_committed_batch_survive_a_kill_9_and_an_uncommitted_batch_is_not_listed_twice(
    home: Path, client: TestClient, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    subject = enrol(client, keys["enrol"])
    rows: list[dict[str, object]] = [
        {"subject": "00000000000000ff", "status": "red"},  # batch 1 (lines 2-3), which commits
        {"subject": subject, "status": "yellow"},
        {"subject": subject, "status": "purple"},  # batch 2 (lines 4-5), killed before its commit
        {"subject": subject, "status": "red"},
        {"subject": "00000000000000fe", "status": "red"},  # batch 3 (line 6)
    ]
    path = _csv(home / "changes.csv", rows, ("subject", "status"))
    refused = home / "changes.csv.refused.csv"
    _import_killed(home, path, "after_the_first_commit")
    assert _refused_rows(refused) == [["line", "reason"], ["2", "unknown_subject"]]
    assert stat.S_IMODE(refused.stat().st_mode) == 0o600
    _import_killed(home, path, "inside_the_transaction")
    assert _status(client, keys["status"], subject) == "yellow"  # batch 2 did not commit
    summary = _run(home, path, capsys)
    assert summary["resumed_at_line"] == 3 and summary["refused"] == 3
    assert _refused_rows(refused) == [
        ["line", "reason"],
        ["2", "unknown_subject"],
        ["4", "bad_status"],
        ["6", "unknown_subject"],
    ]
    assert stat.S_IMODE(refused.stat().st_mode) == 0o600 and _status(client, keys["status"], subject) == "red"
    assert sorted(p.name for p in home.glob("*refused*")) == [refused.name]


def test_a_temporary_file_left_by_a_killed_run_is_removed_by_the_next_and_the_previous_refusals_are_kept(
    home: Path, client: TestClient, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[dict[str, object]] = [{"subject": "00000000000000ff", "status": "red"}]
    path = _csv(home / "changes.csv", rows, ("subject", "status"))
    refused = home / "changes.csv.refused.csv"
    refused.write_text("line,reason\n7,kept from the last run\n", encoding="utf-8")
    before = refused.read_bytes()
    _import_killed(home, path, "before_the_first_commit")
    assert refused.read_bytes() == before  # no batch committed
    leftovers = [p for p in home.glob(".changes.csv.refused.csv.*.tmp")]
    assert len(leftovers) == 1
    summary = _run(home, path, capsys)
    assert summary["refused"] == 1 and _refused_rows(refused) == [["line", "reason"], ["2", "unknown_subject"]]
    assert not any(p.exists() for p in leftovers)
    assert sorted(p.name for p in home.glob("*refused*")) == [refused.name]
