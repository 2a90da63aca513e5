"""Status changes in bulk: the batch endpoint (all or nothing) and ``status import`` (per row, resumable)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from issuer.audit_chain import verify_chain
from issuer.cli import main
from issuer.status_import import BATCH, parse_row

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
    from issuer import status_import

    calls = {"n": 0}
    real = status_import.IssuerService.set_statuses

    def interrupted(self: object, *a: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C during the second batch
        return real(self, *a, **kw)  # type: ignore[arg-type]

    status_import.IssuerService.set_statuses = interrupted  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            main(["--dir", str(home), "status", "import", str(path)])
    finally:
        status_import.IssuerService.set_statuses = real  # type: ignore[method-assign]
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
    assert main(["--dir", str(home), "status", "import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "must name the columns: status, and subject or id_number" in err and "第一行须写明列名" in err


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
