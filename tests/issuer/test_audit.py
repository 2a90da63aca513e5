"""The audit log: its hash chain, and the signed checkpoints that anchor the chain's end outside the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from issuer import Settings, create_app
from issuer.audit_chain import GENESIS, AuditRow, row_hash, verify_chain
from issuer.cli import main
from issuer.errors import CheckpointRefused
from issuer.keys.checkpoints import issuer_public_keys, read_checkpoint
from suishenma import SigningKey, parse_checkpoint, sign_checkpoint

from .conftest import bearer, enrol, storage_of, write_underneath


def _rows(n: int) -> list[AuditRow]:
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        h = row_hash(prev, i, 100 + i, "cli", "subject.enrol", f"s{i}", "{}")
        rows.append(AuditRow(i, 100 + i, "cli", "subject.enrol", f"s{i}", "{}", prev, h))
        prev = h
    return rows


def test_audit_row_rehashed_over_a_forged_link_is_caught_by_the_link_check() -> None:
    rows = _rows(3)
    r = rows[1]
    forged_prev = "f" * 64  # row 2 claims another predecessor; its own hash is recomputed correctly over it
    rows[1] = AuditRow(
        r.id, r.at, r.actor, r.action, r.target, r.detail, forged_prev,
        row_hash(forged_prev, r.id, r.at, r.actor, r.action, r.target, r.detail),
    )  # fmt: skip
    n = rows[2]
    rows[2] = AuditRow(
        n.id, n.at, n.actor, n.action, n.target, n.detail, rows[1].hash,
        row_hash(rows[1].hash, n.id, n.at, n.actor, n.action, n.target, n.detail),
    )  # fmt: skip
    report = verify_chain(rows, high_water=3)
    assert report.problems == ("row 2: link to the previous row is broken",)


def _audit(home: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--dir", str(home), "audit", "verify", *extra])
    return code, capsys.readouterr().out


def _cut_tail(home: Path, keep: int) -> None:
    """Delete the audit rows after ``keep`` and reset the high-water mark to match (each backend keeps its own)."""
    mark = (
        f"UPDATE audit_seq SET n = {keep}"
        if Settings(base_dir=home).database_url
        else f"UPDATE sqlite_sequence SET seq = {keep} WHERE name = 'audit'"
    )
    write_underneath(home, f"DELETE FROM audit WHERE id > {keep}", mark)


def _last_id(home: Path) -> int:
    store = storage_of(home)
    last = store.audit_head()[0]
    store.close()
    return last


@pytest.fixture()
def served(home: Path, keys: dict[str, str]) -> Path:
    """An issuer that enrolled three people and shut down: its last checkpoint covers them."""
    with TestClient(create_app(Settings(base_dir=home))) as client:
        for _ in range(3):
            enrol(client, keys["enrol"])
    return home


def test_audit_tail_cut_with_its_sequence_mark_reset_fails_against_the_checkpoint(
    served: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = _last_id(served)
    code, out = _audit(served, capsys)
    assert code == 0 and f"checkpoint at row {last}" in out  # the server checkpointed on shutdown
    _cut_tail(served, last - 2)
    store = storage_of(served)
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok  # the chain alone sees nothing
    store.close()
    code, out = _audit(served, capsys)
    assert code == 1 and "TAMPERED" in out
    assert f"the database ends at row {last - 2} but a checkpoint signed at" in out
    assert f"names row {last}: rows were deleted from the end" in out


def test_audit_chain_rehashed_after_an_edit_fails_against_the_checkpoint(
    served: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = storage_of(served)
    rows = list(store.audit_rows())
    store.close()
    prev, script = GENESIS, []
    for r in rows:  # row 2 gets another actor; every hash from there on is recomputed
        actor = "someone else" if r.id == 2 else r.actor
        h = row_hash(prev, r.id, r.at, actor, r.action, r.target, r.detail)
        script.append(f"UPDATE audit SET actor = '{actor}', prev_hash = '{prev}', hash = '{h}' WHERE id = {r.id}")
        prev = h
    write_underneath(served, *script)
    store = storage_of(served)
    assert verify_chain(store.audit_rows(), store.audit_high_water()).ok  # a consistent, rewritten chain
    store.close()
    code, out = _audit(served, capsys)
    assert code == 1 and f"row {rows[-1].id} hashes to {prev}, not to {rows[-1].hash} as checkpointed" in out
    assert "the log was rewritten" in out


def test_checkpoint_forged_with_another_key_is_rejected_with_its_reason(
    served: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = served / "var" / "audit-checkpoint.cwt"
    path.write_bytes(sign_checkpoint("SH", 1, bytes(32), SigningKey.generate(), now=1_790_000_000))
    code, out = _audit(served, capsys)
    assert code == 1 and "checkpoint audit-checkpoint.cwt is not trustworthy: list_wrong_signer: kid" in out
    # nor does the issuer replace it with one of its own: the forgery stays as evidence
    store = storage_of(served)
    service = create_app(Settings(base_dir=served), store).state.ctx.service
    with pytest.raises(CheckpointRefused, match="does not verify"):
        service.anchor.write(1_790_000_000)
    store.close()


def test_missing_checkpoint_fails_verify(served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (served / "var" / "audit-checkpoint.cwt").unlink()
    code, out = _audit(served, capsys)
    assert code == 1 and "no checkpoint at" in out and "nothing outside the database vouches" in out


def test_issuer_refuses_to_checkpoint_a_truncated_log(served: Path) -> None:
    path = served / "var" / "audit-checkpoint.cwt"
    held = path.read_bytes()
    last = _last_id(served)
    _cut_tail(served, last - 1)
    store = storage_of(served)
    service = create_app(Settings(base_dir=served), store).state.ctx.service
    with pytest.raises(CheckpointRefused, match="rows were deleted from the end"):
        service.anchor.write(1_790_000_000)
    store.close()
    assert path.read_bytes() == held


def test_checkpoint_kept_by_a_monitor_catches_a_truncation_the_local_one_hides(
    served: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with TestClient(create_app(Settings(base_dir=served))) as client:
        r = client.get("/v1/audit/checkpoint")
        assert r.status_code == 200 and r.headers["content-type"] == "application/suishenma-checkpoint+cwt"
        assert "public, max-age=" in r.headers["cache-control"]
        assert client.get("/v1/audit/checkpoint", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        cp = parse_checkpoint(r.content, issuer_public_keys(Settings(base_dir=served)))
    monitor = tmp_path / "monitor.cwt"
    monitor.write_bytes(r.content)
    last = _last_id(served)
    assert cp.seq == last and cp.issuer == "SH"
    # someone with the host cuts the tail and, holding the signing key, re-anchors the shorter log
    _cut_tail(served, last - 1)
    (served / "var" / "audit-checkpoint.cwt").unlink()
    write_underneath(served, "DELETE FROM audit_checkpoints")  # and the copy every node serves
    assert main(["--dir", str(served), "api-key", "revoke", "--name", "mint"]) == 0  # any CLI change re-anchors
    assert _audit(served, capsys)[0] == 0  # the local checkpoint now agrees with the cut log
    code, out = _audit(served, capsys, "--checkpoint", str(monitor))  # row {last} is now the revocation's
    assert code == 1 and f"not to {cp.head_hex} as checkpointed: the log was rewritten" in out


def test_checkpoint_endpoint_is_404_until_one_is_written(home: Path) -> None:
    settings = Settings(base_dir=home)
    settings.audit_checkpoint_path.unlink()
    write_underneath(home, "DELETE FROM audit_checkpoints")
    client = TestClient(create_app(settings))  # no lifespan: no checkpoint thread to write one
    r = client.get("/v1/audit/checkpoint")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_server_checkpoints_the_head_while_serving(home: Path, keys: dict[str, str]) -> None:
    settings = Settings(base_dir=home, audit_checkpoint_s=0.05)
    with TestClient(create_app(settings)) as client:
        ticker = client.app.state.audit_ticker  # type: ignore[attr-defined]
        enrol(client, keys["enrol"])
        store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
        head = store.audit_head()
        keys_by_kid = issuer_public_keys(settings)
        for _ in range(200):  # two ticks after the write at most; the bound only stops a hang
            ticker.ticked.clear()
            assert ticker.ticked.wait(30), "the checkpoint thread stopped ticking"
            cp = read_checkpoint(settings.audit_checkpoint_path, keys_by_kid)
            if cp is not None and cp.seq >= head[0]:
                break
        assert cp is not None and (cp.seq, cp.head_hex) == head
        r = client.get("/v1/audit", headers=bearer(keys["admin"]))
        assert r.json()["ok"] is True and r.json()["checkpoint_seq"] == head[0]
