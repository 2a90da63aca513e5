"""The backup drill, on both backends: back up a live issuer while it takes writes, restore into a fresh
folder (and a fresh PostgreSQL database), and the restored issuer's audit log verifies against its last
checkpoint, its sealed names open, and codes minted before still verify. A restore that cannot finish
changes nothing."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from issuer.backup import MANIFEST
from issuer.cli import main as cli_main
from issuer.keys.sealing import data_key_path
from issuer.opening import open_storage
from issuer.service import IssuerService
from issuer.settings import Settings
from suishenma import load_verification_key, parse_trust_list, verify
from testing.live_issuer import LiveIssuer

from ..pg_server import PgServer
from .conftest import new_person, person_of


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(list(args))
    return rc, out.getvalue(), err.getvalue()


def _target_database(backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the restore at a fresh, empty database (PostgreSQL), as an operator's new machine would be."""
    if backend == "postgres":
        server: PgServer = request.getfixturevalue("pg")
        monkeypatch.setenv("SUISHENMA_ISSUER_DATABASE_URL", server.create_database())


def test_backup_under_writes_restores_whole(
    home: Path,
    keys: dict[str, str],
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth = {"Authorization": f"Bearer {keys['all']}"}
    stop, written = threading.Event(), [0]
    with LiveIssuer(home) as server, httpx.Client(base_url=server.url, headers=auth) as http:
        people = [http.post("/v1/subjects", json=new_person()).json()["subject"] for _ in range(5)]
        codes = [http.post(f"/v1/subjects/{s}/codes", json={}).json()["code"] for s in people]
        paper = http.post(f"/v1/subjects/{people[0]}/offline-codes").json()["code"]

        def writer() -> None:
            with httpx.Client(base_url=server.url, headers=auth) as w:
                while not stop.is_set():
                    status = ("yellow", "green")[written[0] % 2]
                    w.put(f"/v1/subjects/{people[1]}/status", json={"status": status, "reason": "drill"})
                    written[0] += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while written[0] < 20:
                time.sleep(0.01)
            rc, out, err = _cli("--dir", str(home), "backup", "--out", str(tmp_path / "backup"), "--with-keys")
            at_backup = written[0]
            while written[0] < at_backup + 20:  # the issuer goes on writing after the copy
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join()
    assert rc == 0, err
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert {f["path"] for f in manifest["files"]} >= {"keys/data.key", "keys/pseudonym.key", "var/audit-checkpoint.cwt"}
    assert all(f["copied"] for f in manifest["files"])
    assert oct((tmp_path / "backup").stat().st_mode & 0o777) == "0o700"

    _target_database(backend, request, monkeypatch)
    fresh = tmp_path / "restored"
    rc, out, err = _cli("--dir", str(fresh), "restore", str(tmp_path / "backup"), "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["ok"] and report["problems"] == []
    assert report["names_opened"] == 5 and report["audit_rows"] >= manifest["audit_seq_at_start"]
    assert report["checkpoint_seq"] is not None and report["checkpoint_seq"] <= report["audit_rows"]

    settings = Settings(base_dir=fresh)
    service = IssuerService(settings, open_storage(settings))
    try:
        now = int(time.time())
        body = service.publisher.trust_list(now).body
        trust = parse_trust_list(body, load_verification_key(fresh / "keys/root.pub"), now=now)
        for subject, code in zip(people, codes, strict=True):
            assert person_of(fresh, verify(code, trust.keyring, now=now).claims.subject) == subject
        assert verify(paper, trust.keyring, now=now).claims.status_index is not None
        assert service.subject(people[0]).name == "张小三"
    finally:
        service.storage.close()


def test_a_restore_missing_a_key_file_changes_nothing(
    home: Path, backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, _, err = _cli("--dir", str(home), "backup", "--out", str(tmp_path / "backup"))  # keys listed, not copied
    assert rc == 0, err
    _target_database(backend, request, monkeypatch)
    fresh = tmp_path / "restored"
    rc, _, err = _cli("--dir", str(fresh), "restore", str(tmp_path / "backup"))
    assert rc == 1 and "keys/data.key is missing" in err and "data key" in err
    assert not (fresh / "var" / "issuer.db").exists() and not data_key_path(fresh / "keys").exists()
    if backend == "postgres":  # nothing restored into the database either
        import psycopg

        with psycopg.connect(Settings(base_dir=fresh).database_url) as conn:
            tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            assert tables.fetchone() == (0,)


def test_a_key_file_that_is_not_the_one_backed_up_is_refused(
    home: Path, backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, _, _ = _cli("--dir", str(home), "backup", "--out", str(tmp_path / "backup"))
    assert rc == 0
    _target_database(backend, request, monkeypatch)
    fresh = tmp_path / "restored"
    (fresh / "keys").mkdir(parents=True)
    for name in ("data.key", "pseudonym.key", "root.pub", "root.key"):
        if (home / "keys" / name).exists():
            (fresh / "keys" / name).write_bytes((home / "keys" / name).read_bytes())
    (fresh / "keys" / "data.key").write_bytes(b"another key")
    rc, _, err = _cli("--dir", str(fresh), "restore", str(tmp_path / "backup"))
    assert rc == 1 and "keys/data.key is not the file that was backed up" in err


def test_backup_refuses_a_folder_in_use_and_an_issuer_not_initialised(home: Path, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "something").write_text("x")
    rc, _, err = _cli("--dir", str(home), "backup", "--out", str(tmp_path / "used"))
    assert rc == 1 and "is not empty" in err
    rc, _, err = _cli("--dir", str(tmp_path / "nothing"), "backup", "--out", str(tmp_path / "b"))
    assert rc != 0 and not (tmp_path / "b" / MANIFEST).exists()


def test_restore_refuses_an_issuer_that_holds_data(home: Path, tmp_path: Path) -> None:
    rc, _, _ = _cli("--dir", str(home), "backup", "--out", str(tmp_path / "backup"), "--with-keys")
    assert rc == 0
    rc, _, err = _cli("--dir", str(home), "restore", str(tmp_path / "backup"))
    assert rc == 1 and "already holds data" in err
