"""Tracing: only the issuer, with its pseudonym keys, links a scan log's pseudonyms to people; every look-up is
audited with its reason (issue: unlinkable presentations, item 3)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from issuer.cli import main
from issuer.errors import Problem, SealError
from issuer.keys.pseudonym_keys import load_pseudonym_keys, pseudonym_key_path, save_pseudonym_keys
from suishenma import PSEUDONYM_BYTES, verify

from .conftest import Clock, bearer, enrol, person_of, query, trust_list


def _subs(client: TestClient, key: str, home: Path, subject: str, now: int, n: int = 3) -> list[str]:
    trust = trust_list(client, home, now)
    out = []
    for _ in range(n):
        code = client.post(f"/v1/subjects/{subject}/codes", json={"scenario": "venue"}, headers=bearer(key)).json()
        out.append(verify(code["code"], trust.keyring, now=now).claims.subject.hex())
    return out


def _trace(client: TestClient, key: str, pseudonyms: list[str], reason: str = "case 2026-117") -> TestClient:
    return client.post("/v1/trace", json={"pseudonyms": pseudonyms, "reason": reason}, headers=bearer(key))  # type: ignore[return-value]


def test_each_code_carries_a_new_pseudonym_that_only_the_trace_scope_resolves(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    a, b = enrol(client, keys["enrol"]), enrol(client, keys["enrol"])
    now = int(clock.t)
    subs_a, subs_b = _subs(client, keys["mint"], home, a, now), _subs(client, keys["mint"], home, b, now)
    assert len(set(subs_a + subs_b)) == 6 and all(len(s) == 2 * PSEUDONYM_BYTES for s in subs_a)
    assert a not in " ".join(subs_a) and b not in " ".join(subs_b)
    stranger = "00" * PSEUDONYM_BYTES
    r = _trace(client, keys["trace"], [*subs_a, *subs_b, stranger])
    assert r.status_code == 200
    found = {x["pseudonym"]: x["subject"] for x in r.json()["results"]}
    assert [found[s] for s in subs_a] == [a] * 3 and [found[s] for s in subs_b] == [b] * 3 and found[stranger] is None
    rows = [row for row in client.app.state.ctx.service.storage.audit_rows() if row.action == "trace"]  # type: ignore[attr-defined]
    assert len(rows) == 7 and all('"reason":"case 2026-117"' in row.detail for row in rows)
    assert sorted(row.target for row in rows) == sorted([a] * 3 + [b] * 3 + ["-"])
    # other scopes cannot trace, and a trace needs a reason and pseudonyms in their form
    for scope in ("mint", "status", "kiosk", "enrol", "revoke"):
        assert _trace(client, keys[scope], subs_a).status_code == 403
    r = _trace(client, keys["trace"], subs_a, reason="")
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    r = _trace(client, keys["trace"], ["zz" * 16])
    assert r.status_code == 422 and r.json()["error"] == "pseudonym_malformed"
    assert len([row for row in client.app.state.ctx.service.storage.audit_rows() if row.action == "trace"]) == 7  # type: ignore[attr-defined]


def test_trace_of_a_kiosk_log_from_the_command_line_survives_a_key_rotation(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    a = enrol(client, keys["enrol"])
    now = int(clock.t)
    before = _subs(client, keys["mint"], home, a, now, 1)[0]
    assert main(["--dir", str(home), "keys", "rotate-pseudonym", "--json"]) == 0
    client.app.state.ctx.service._pseudonyms = None  # type: ignore[attr-defined]  # as a restarted worker
    after = _subs(client, keys["mint"], home, a, now, 1)[0]
    assert person_of(home, bytes.fromhex(after)) == a
    scans = [
        {"seq": n, "at": now, "scenario": "venue", "decision": "ALLOW", "reason": "ok", "subject": sub}
        for n, sub in enumerate((before, after), 1)
    ]
    r = client.post("/v1/scan-logs", json={"kiosk_id": "kiosk", "records": scans}, headers=bearer(keys["kiosk"]))
    assert r.status_code == 200
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--dir", str(home), "trace", "--kiosk", "kiosk", "--reason", "case 7", "--json"]) == 0
    assert {x["pseudonym"]: x["subject"] for x in json.loads(out.getvalue())} == {before: a, after: a}
    audit = query(client.app.state.ctx.service.storage, "SELECT action FROM audit")  # type: ignore[attr-defined]
    assert ("pseudonym_key.rotate",) in audit


def test_without_the_pseudonym_key_nothing_resolves(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock, capsys: object
) -> None:
    a = enrol(client, keys["enrol"])
    sub = _subs(client, keys["mint"], home, a, int(clock.t), 1)[0]
    pseudonym_key_path(home / "keys").unlink()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["--dir", str(home), "trace", sub, "--reason", "case 9"]) == 1
    assert "no pseudonym key at" in err.getvalue() and "resolves to a person" in err.getvalue()
    # minting makes a new key (audited); the old pseudonyms still name nobody
    client.app.state.ctx.service._pseudonyms = None  # type: ignore[attr-defined]
    _subs(client, keys["mint"], home, a, int(clock.t), 1)
    r = _trace(client, keys["trace"], [sub])
    assert r.json()["results"] == [{"pseudonym": sub, "subject": None}]


def test_a_damaged_or_locked_pseudonym_key_file_is_refused_by_reason(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    path = pseudonym_key_path(keys_dir)
    keys = load_pseudonym_keys(keys_dir, create=True)
    assert path.stat().st_mode & 0o777 == 0o600 and load_pseudonym_keys(keys_dir).current.kid == keys.current.kid
    for body in ("not json", '{"keys": []}', '{"keys": ["c2hvcnQ="]}', '{"other": 1}', "[1, 2]"):
        path.write_text(body)
        with pytest.raises(SealError) as exc:
            load_pseudonym_keys(keys_dir)
        assert exc.value.problem is Problem.DATA_KEY_DAMAGED, body
    save_pseudonym_keys(keys_dir, keys, b"right passphrase")
    assert "ENCRYPTED" in path.read_text() and keys.current.secret.hex() not in path.read_text()
    for passphrase, problem in (
        (None, Problem.DATA_KEY_PASSPHRASE_MISSING),
        (b"wrong", Problem.DATA_KEY_PASSPHRASE_WRONG),
    ):
        with pytest.raises(SealError) as exc:
            load_pseudonym_keys(keys_dir, passphrase)
        assert exc.value.problem is problem
    assert load_pseudonym_keys(keys_dir, b"right passphrase").current.kid == keys.current.kid
