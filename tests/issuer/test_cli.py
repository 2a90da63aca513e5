"""``suishenma-issuer`` in-process: init, api-key create, keys rotate, audit verify, offline-codes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from issuer import Settings, create_app
from issuer.api_keys import hash_api_key
from issuer.cli import main
from issuer.keys.sealing import Sealer
from issuer.storage.sqlite import SQLiteStorage
from suishenma import SigningKey, load_verification_key, parse_trust_list, verify

from ..pg_server import PgServer
from .conftest import bearer, enrol, person_of, query, storage_of, trust_list, write_underneath


@pytest.fixture()
def backend() -> str:
    """These tests are not about storage: the embedded default only."""
    return "sqlite"


def test_init_makes_keys_database_and_first_lists_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(tmp_path), "init", "--issuer-id", "BJ"]) == 0
    out = capsys.readouterr().out
    assert "BJ" in out and "PRIVATE" not in out
    keys = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert keys[-2:] == ["root.key", "root.pub"] and keys[0] == "data.key"  # names and ID numbers are sealed with it
    assert keys[1].startswith("issuer-") and keys[1].endswith(".key")
    for p in (tmp_path / "keys").glob("*.key"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert (tmp_path / "var" / "issuer.db").exists()
    assert main(["--dir", str(tmp_path), "init"]) == 0
    assert "already initialised" in capsys.readouterr().out
    assert len(list((tmp_path / "keys").glob("issuer-*.key"))) == 1


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture()
def open_umask() -> Iterator[None]:
    """The usual umask 022, under which files are born readable by every local user."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_other_local_users_cannot_read_the_database_wal_or_keys(tmp_path: Path, open_umask: None) -> None:
    assert main(["--dir", str(tmp_path), "init"]) == 0
    assert _mode(tmp_path / "var") == 0o700 and _mode(tmp_path / "keys") == 0o700
    store = storage_of(tmp_path)
    store.subject_create("00000000000000aa", "张三", "310101199001011234", 0, "t")  # the WAL now holds a name
    db = tmp_path / "var" / "issuer.db"
    wal, shm = db.with_name("issuer.db-wal"), db.with_name("issuer.db-shm")
    assert wal.stat().st_size > 0
    assert {p.name: _mode(p) for p in (db, wal, shm)} == {p.name: 0o600 for p in (db, wal, shm)}
    store.close()


def test_other_local_users_cannot_list_var_of_an_issuer_on_postgresql(
    tmp_path: Path, open_umask: None, pg: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUISHENMA_ISSUER_DATABASE_URL", pg.create_database())
    assert main(["--dir", str(tmp_path), "init"]) == 0
    assert not (tmp_path / "var" / "issuer.db").exists()  # the data is in PostgreSQL; var/ holds the rest
    assert _mode(tmp_path / "var") == 0o700 and _mode(tmp_path / "keys") == 0o700
    held = {p.name: _mode(p) for p in (tmp_path / "var").iterdir()}
    assert {"identity.json", "audit-checkpoint.cwt"} <= set(held) and set(held.values()) == {0o600}, held


def test_var_left_0755_by_an_older_postgresql_install_is_tightened_to_0700_when_the_folder_is_opened(
    tmp_path: Path, open_umask: None, pg: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUISHENMA_ISSUER_DATABASE_URL", pg.create_database())
    assert main(["--dir", str(tmp_path), "init"]) == 0
    var = tmp_path / "var"
    var.chmod(0o755)  # as versions before left it, with no database file to make it first
    assert main(["--dir", str(tmp_path), "audit", "verify"]) == 0
    assert _mode(var) == 0o700
    if os.geteuid() == 0:  # a folder of another user is not this issuer's to change
        var.chmod(0o755)
        os.chown(var, 65534, -1)
        try:
            assert main(["--dir", str(tmp_path), "audit", "verify"]) == 0
            assert _mode(var) == 0o755
        finally:
            os.chown(var, 0, -1)


def test_database_made_world_readable_by_an_older_version_is_tightened_on_open(
    tmp_path: Path, open_umask: None
) -> None:
    db = tmp_path / "issuer.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    wal = db.with_name("issuer.db-wal")
    assert _mode(db) == 0o644 and _mode(wal) == 0o644
    store = SQLiteStorage(db, Sealer.generate())  # while the other connection keeps the WAL in place
    assert _mode(db) == 0o600 and _mode(wal) == 0o600
    store.close()
    conn.close()


def test_init_encrypts_keys_with_passphrase_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", "correct horse")
    assert main(["--dir", str(tmp_path), "init"]) == 0
    for p in (tmp_path / "keys").glob("*.key"):
        assert b"ENCRYPTED" in p.read_bytes()
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", "wrong")
    assert main(["--dir", str(tmp_path), "trust-list", "sign"]) == 1


def _state(base: Path) -> tuple[object, ...]:
    """Every file under ``base`` with its content hash, and the signing keys and audit rows the database holds."""
    files = sorted(
        (str(p.relative_to(base)), hashlib.sha256(p.read_bytes()).hexdigest()) for p in base.rglob("*") if p.is_file()
    )
    conn = sqlite3.connect(base / "var" / "issuer.db")
    keys = conn.execute("SELECT * FROM signing_keys ORDER BY kid").fetchall()
    audit = conn.execute("SELECT COUNT(*), MAX(hash) FROM audit").fetchone()
    conn.close()
    return files, keys, audit


@pytest.mark.parametrize("passphrase", [None, "wrong"])
def test_rotation_with_a_missing_or_wrong_passphrase_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], passphrase: str | None
) -> None:
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", "correct horse")
    assert main(["--dir", str(tmp_path), "init"]) == 0
    before = _state(tmp_path)
    if passphrase is None:
        monkeypatch.delenv("SUISHENMA_KEY_PASSPHRASE")
    else:
        monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", passphrase)
    capsys.readouterr()
    assert main(["--dir", str(tmp_path), "keys", "rotate"]) == 1
    err = capsys.readouterr().err
    assert "SUISHENMA_KEY_PASSPHRASE" in err and "passphrase" in err
    assert _state(tmp_path) == before  # no key file written, none recorded or retired, no audit row
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", "correct horse")
    assert main(["--dir", str(tmp_path), "keys", "rotate"]) == 0
    assert all(b"ENCRYPTED" in p.read_bytes() for p in (tmp_path / "keys").glob("*.key"))


def test_rotation_with_an_unopenable_root_key_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", "correct horse")
    assert main(["--dir", str(tmp_path), "init"]) == 0
    root = tmp_path / "keys" / "root.key"
    root.write_bytes(SigningKey.generate().pem(b"another passphrase"))  # re-encrypted by someone else
    before = _state(tmp_path)
    assert main(["--dir", str(tmp_path), "keys", "rotate"]) == 1
    err = capsys.readouterr().err
    assert f"the passphrase in SUISHENMA_KEY_PASSPHRASE does not open the root key file {root}" in err
    assert f"错误：环境变量 SUISHENMA_KEY_PASSPHRASE 中的口令打不开根密钥文件 {root}" in err
    assert _state(tmp_path) == before


def test_init_beside_encrypted_keys_without_passphrase_writes_no_plaintext_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", "correct horse")
    assert main(["--dir", str(tmp_path), "init"]) == 0
    (tmp_path / "var" / "issuer.db").unlink()  # a lost database: init runs again beside the old keys
    monkeypatch.delenv("SUISHENMA_KEY_PASSPHRASE")
    assert main(["--dir", str(tmp_path), "init"]) == 1
    assert "are encrypted: set SUISHENMA_KEY_PASSPHRASE" in capsys.readouterr().err
    assert all(b"ENCRYPTED" in p.read_bytes() for p in (tmp_path / "keys").glob("*.key"))


def test_api_key_is_printed_once_as_last_line_and_stored_hashed(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(home), "api-key", "create", "--name", "app", "--scopes", "mint,enrol"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("ssk_") and len(key) > 40
    raw = b"".join(p.read_bytes() for p in (home / "var").glob("issuer.db*"))
    assert key.encode() not in raw
    record = storage_of(home).api_key_by_hash(hash_api_key(key))
    assert record is not None and record.scopes == {"mint", "enrol"}
    assert main(["--dir", str(home), "api-key", "create", "--name", "app", "--scopes", "mint"]) == 1  # name taken
    assert main(["--dir", str(home), "api-key", "create", "--name", "x", "--scopes", "root"]) == 1


@pytest.mark.parametrize("rate", ["nan", "inf", "-inf", "0", "-1"])
def test_api_key_rate_that_is_not_a_positive_number_is_a_usage_error(
    home: Path, capsys: pytest.CaptureFixture[str], rate: str
) -> None:
    assert main(["--dir", str(home), "api-key", "create", "--name", "app", "--scopes", "mint", f"--rate={rate}"]) == 2
    assert "--rate must be a finite number" in capsys.readouterr().err
    assert storage_of(home).api_keys() == []


@pytest.mark.parametrize(
    ("name", "scopes", "says"),
    [
        ("gate\u202e1", "mint", "U+202E"),
        ("gate\n1", "status", "U+000A"),
        ("gate 1", "kiosk", "not a kiosk id"),
        ("g" * 65, "kiosk,status", "not a kiosk id"),
    ],
)
def test_api_key_names_that_would_spoof_output_or_match_no_kiosk_are_refused(
    home: Path, capsys: pytest.CaptureFixture[str], name: str, scopes: str, says: str
) -> None:
    assert main(["--dir", str(home), "api-key", "create", "--name", name, "--scopes", scopes]) == 2
    assert says in capsys.readouterr().err
    assert storage_of(home).api_keys() == []


def test_default_rate_from_settings_must_be_finite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUISHENMA_ISSUER_RATE_PER_S", "inf")
    assert main(["--dir", str(tmp_path), "init"]) == 2


def test_revoked_api_key_stops_working_on_a_running_server(
    home: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from issuer.http.app_state import KEY_CACHE_S

    with TestClient(create_app(Settings(base_dir=home))) as client:
        assert client.get("/v1/subjects/0123456789abcdef", headers=bearer(keys["status"])).status_code == 404
        assert main(["--dir", str(home), "api-key", "revoke", "--name", "status"]) == 0
        assert main(["--dir", str(home), "api-key", "revoke", "--name", "status"]) == 0
        assert "already revoked" in capsys.readouterr().out
        client.app.state.ctx._keys.clear()  # type: ignore[attr-defined]  # as if KEY_CACHE_S had passed
        assert KEY_CACHE_S <= 5
        assert client.get("/v1/subjects/0123456789abcdef", headers=bearer(keys["status"])).status_code == 401
    assert main(["--dir", str(home), "api-key", "revoke", "--name", "nobody"]) == 1
    assert main(["--dir", str(home), "api-key", "list"]) == 0
    listing = capsys.readouterr().out
    assert "status" in listing and "revoked" in listing and keys["mint"] not in listing


def test_rotation_keeps_old_key_trusted_until_its_codes_expire(
    home: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(base_dir=home)
    with TestClient(create_app(settings)) as client:
        s = enrol(client, keys["enrol"])
        old_code = client.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["mint"])).json()["code"]
    running = TestClient(create_app(settings))  # a server that keeps running through the rotation
    assert main(["--dir", str(home), "keys", "rotate"]) == 0
    assert "retired" in capsys.readouterr().out
    now = int(time.time())
    running.app.state.ctx.service._key_checked = 0.0  # type: ignore[attr-defined]  # as if 2 s had passed
    after = running.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["mint"])).json()["code"]
    with TestClient(create_app(settings)) as client:
        trust = trust_list(client, home, now)
        assert len(trust.issuers) == 2  # the old key signed a code that is still valid
        new_code = client.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["mint"])).json()["code"]
        old_kid = verify(old_code, trust.keyring, now=now).kid
        assert verify(new_code, trust.keyring, now=now).kid != old_kid
        assert verify(after, trust.keyring, now=now).kid == verify(new_code, trust.keyring, now=now).kid
    # once the old key's last code has expired, re-signing drops it
    write_underneath(home, f"UPDATE signing_keys SET last_expiry = {now - 1} WHERE kid = '{old_kid.hex()}'")
    assert main(["--dir", str(home), "trust-list", "sign"]) == 0
    with TestClient(create_app(settings)) as client:
        assert [e.key.kid for e in trust_list(client, home, now).issuers] != [old_kid]
        assert len(trust_list(client, home, now).issuers) == 1


def _audit(home: Path, *extra: str) -> int:
    return main(["--dir", str(home), "audit", "verify", *extra])


def test_audit_verify_detects_edited_inserted_and_deleted_rows(
    home: Path, client: TestClient, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        enrol(client, keys["enrol"])
    assert _audit(home) == 0
    head = capsys.readouterr().out.split("head ")[-1].strip()
    db = home / "var" / "issuer.db"

    def tamper(sql: str) -> int:
        copy = home / "tampered"
        copy.mkdir(exist_ok=True)
        (copy / "var").mkdir(exist_ok=True)
        conn = sqlite3.connect(db)
        conn.execute("VACUUM INTO ?", (str(copy / "var" / "issuer.db.new"),))
        conn.close()
        (copy / "var" / "issuer.db.new").replace(copy / "var" / "issuer.db")
        t = sqlite3.connect(copy / "var" / "issuer.db")
        t.executescript(sql)
        t.commit()
        t.close()
        return _audit(copy, "--expect-head", head)

    assert tamper("UPDATE audit SET actor = 'someone else' WHERE id = 3") == 1
    assert "row 3: content was edited" in capsys.readouterr().out
    assert tamper("DELETE FROM audit WHERE id = 2") == 1
    assert "row 2 missing" in capsys.readouterr().out
    last = sqlite3.connect(db).execute("SELECT MAX(id) FROM audit").fetchone()[0]
    assert tamper(f"DELETE FROM audit WHERE id = {last}") == 1
    assert "deleted from the end" in capsys.readouterr().out
    forged = "INSERT INTO audit (at, actor, action, target, detail, prev_hash, hash) SELECT at, 'x', action, target,"
    assert tamper(f"{forged} detail, hash, hash FROM audit WHERE id = {last}") == 1
    assert f"row {last + 1}: content was edited" in capsys.readouterr().out
    # a forger who also resets the AUTOINCREMENT mark is still caught by the recorded head
    assert (
        tamper(f"UPDATE sqlite_sequence SET seq = {last - 1} WHERE name = 'audit'; DELETE FROM audit WHERE id = {last}")
        == 1
    )


def test_offline_codes_bulk_renders_images_sheet_and_manifest(
    home: Path, client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    subjects = [enrol(client, keys["enrol"]) for _ in range(3)]
    listing = tmp_path / "people.txt"
    listing.write_text("# paper codes for the community centre\n" + "\n".join(subjects) + "\n\n")
    out = tmp_path / "print"
    assert main(["--dir", str(home), "offline-codes", "--subjects", str(listing), "--out", str(out)]) == 0
    manifest = (out / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 4 and manifest[0] == "subject,status_index,expires_at,file"
    sheet = (out / "sheet.html").read_text()
    assert sheet.count("<svg") == 3 and "张*三" in sheet and "张小三" not in sheet
    now = int(time.time())
    trust = parse_trust_list(
        client.get("/v1/trust-list").content, load_verification_key(home / "keys/root.pub"), now=now
    )
    for line in manifest[1:]:
        subject, index, _, name = line.split(",")
        pixels = np.asarray(Image.open(out / name).convert("L"))
        claims = verify(zxingcpp.read_barcodes(pixels)[0].text, trust.keyring, now=now).claims
        assert person_of(home, claims.subject) == subject and claims.status_index == int(index)
    assert (
        main(["--dir", str(home), "offline-codes", "--subjects", str(listing), "--out", str(out), "--format", "svg"])
        == 0
    )
    assert len(list(out.glob("*.svg"))) == 3
    assert stat.S_IMODE(out.stat().st_mode) == 0o700  # year-long credentials, for the operator only
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o600}


def test_offline_codes_with_an_unknown_subject_issues_nothing(
    home: Path, client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    listing = tmp_path / "people.txt"
    listing.write_text(enrol(client, keys["enrol"]) + "\nffffffffffffffff\n")
    assert main(["--dir", str(home), "offline-codes", "--subjects", str(listing), "--out", str(tmp_path / "o")]) == 1
    store = storage_of(home)
    assert query(store, "SELECT COUNT(*) FROM offline_codes")[0][0] == 0
    listing.write_text("not-a-subject\n")
    assert main(["--dir", str(home), "offline-codes", "--subjects", str(listing), "--out", str(tmp_path / "o")]) == 1


def test_settings_come_from_toml_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from issuer.settings import load_settings

    cfg = tmp_path / "issuer.toml"
    cfg.write_text('issuer_id = "GZ"\nstatus_list_ttl = 90\ndevice_batch = 8\n')
    monkeypatch.setenv("SUISHENMA_ISSUER_STATUS_LIST_TTL", "120")
    s = load_settings(cfg, base_dir=tmp_path)
    assert s.issuer_id == "GZ" and s.status_list_ttl == 120 and s.base_dir == tmp_path
    assert s.device_batch == 8 and s.slot == 10800
    monkeypatch.delenv("SUISHENMA_ISSUER_STATUS_LIST_TTL")
    for bad in ("status_list_ttl = 1\n", "device_batch = 7\n", "device_batch = 2\n"):
        cfg.write_text(bad)
        assert main(["--config", str(cfg), "--dir", str(tmp_path), "init"]) == 2
    assert main(["--config", str(cfg), "--dir", str(tmp_path), "init"]) == 2


def test_trust_list_signed_by_an_offline_root(
    home: Path, tmp_path: Path, client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    offline = tmp_path / "offline"
    offline.mkdir()
    (home / "keys" / "root.key").rename(offline / "root.key")  # the root leaves the issuer host
    assert main(["--dir", str(home), "trust-list", "sign"]) == 1
    assert main(["--dir", str(home), "keys", "rotate"]) == 0
    assert "root key is offline" in capsys.readouterr().out
    request = tmp_path / "request.json"
    assert main(["--dir", str(home), "trust-list", "request", "--out", str(request)]) == 0
    signed, in_force = tmp_path / "trust.cwt", tmp_path / "in-force.cwt"
    in_force.write_bytes(client.get("/v1/trust-list").content)
    args = ["trust-list", "sign", "--request", str(request), "--root-key", str(offline / "root.key")]
    assert main([*args, "--out", str(signed)]) == 1  # the new key is new to the root: not signed unconfirmed
    assert "is not confirmed" in capsys.readouterr().err and not signed.exists()
    args += ["--current", str(in_force)]  # the rotated-out key, listed there, vouches for the new one
    assert main([*args, "--out", str(signed)]) == 0
    assert main(["--dir", str(home), "trust-list", "import", str(signed)]) == 0
    assert "version 2 published" in capsys.readouterr().out
    r = client.get("/v1/trust-list")
    assert r.content == signed.read_bytes() and r.headers["x-list-version"] == "2"
    assert main(["--dir", str(home), "trust-list", "import", str(signed)]) == 1  # not newer: refused
    assert "not above the published 2" in capsys.readouterr().err
    forged = bytearray(signed.read_bytes())
    forged[-3] ^= 1
    signed.write_bytes(bytes(forged))
    assert main(["--dir", str(home), "trust-list", "import", str(signed)]) == 1
    assert "error:" in capsys.readouterr().err
    assert client.get("/v1/trust-list").headers["x-list-version"] == "2"
    request.write_text(request.read_text().replace('"kid": "', '"kid": "ff'))
    assert main([*args, "--out", str(signed)]) == 1  # a key that does not match its kid is not signed
