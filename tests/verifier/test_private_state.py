"""The state folder holds the scan log and a credential: who else on the kiosk may read them."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from verifier import KIOSK_KEY_ENV, KIOSK_KEY_FILE_ENV, SyncReason, Verifier

from .conftest import MakeVerifier, quick_fetcher
from .sim import IssuerSim


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _db_bytes(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.glob("verifier.db*"))


def test_other_local_users_cannot_read_the_state_folder_or_its_database(
    sim: IssuerSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "var" / "gate-1"
    v = Verifier.init(state, sim.url, sim.root.public(), "venue", "gate-1", fetcher=quick_fetcher())
    assert v.sync(now=sim.now).ok
    v.verify(sim.code(), now=sim.now)
    assert _mode(state) == 0o700 and _mode(tmp_path / "var") == 0o700
    files = sorted(p.name for p in state.iterdir())
    assert {"verifier.db", "verifier.db-wal", "verifier.db-shm"} <= set(files)
    assert {p.name: _mode(p) for p in state.iterdir()} == dict.fromkeys(files, 0o600)
    v.close()


def test_state_made_by_an_older_version_is_made_private_on_open(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    v = make_verifier()
    state = v.state_dir
    v.close()
    for p in state.iterdir():
        p.chmod(0o644)
    Verifier.open(state).close()
    assert all(_mode(p) == 0o600 for p in state.glob("verifier.db*"))


def test_kiosk_key_from_the_environment_is_kept_out_of_the_database(
    sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KIOSK_KEY_ENV, sim.api_key)
    v = make_verifier()
    key_file = v.state_dir / "kiosk-api-key"
    assert key_file.read_text().strip() == sim.api_key and _mode(key_file) == 0o600
    assert sim.api_key.encode() not in _db_bytes(v.state_dir)
    monkeypatch.delenv(KIOSK_KEY_ENV)  # later runs need no environment: the file is named in the config
    v.verify(sim.code(), now=sim.now)
    report = v.sync(now=sim.now)
    assert report.ok and report.uploaded == 1


def test_kiosk_key_file_named_by_the_environment(
    sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "etc-kiosk.key"
    secret.write_text(sim.api_key + "\n")
    secret.chmod(0o600)
    monkeypatch.setenv(KIOSK_KEY_FILE_ENV, str(secret))
    v = make_verifier()
    assert not (v.state_dir / "kiosk-api-key").exists()
    v.verify(sim.code(), now=sim.now)
    assert v.sync(now=sim.now).uploaded == 1


def test_kiosk_key_file_readable_by_others_is_refused_with_the_fix(
    sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KIOSK_KEY_ENV, sim.api_key)
    v = make_verifier()
    monkeypatch.delenv(KIOSK_KEY_ENV)
    (v.state_dir / "kiosk-api-key").chmod(0o644)
    v.verify(sim.code(), now=sim.now)
    report = v.sync(now=sim.now)
    assert not report.ok and report.uploaded == 0
    assert report.reasons == [SyncReason.UPLOAD_NO_KEY]
    assert "is readable by others (mode 644): chmod 600 it" in report.errors[0]
    assert v.health(now=sim.now).pending_uploads == 1


def test_key_left_in_an_old_state_database_is_moved_out_and_overwritten(
    sim: IssuerSim, make_verifier: MakeVerifier
) -> None:
    v = make_verifier()
    state = v.state_dir
    v.close()
    secret = "old-kiosk-secret-0123456789"
    with sqlite3.connect(state / "verifier.db") as conn:  # what older versions wrote
        conn.execute("INSERT INTO config (key, value) VALUES ('kiosk_api_key', ?)", (secret,))
    Verifier.open(state).close()
    assert (state / "kiosk-api-key").read_text().strip() == secret
    assert secret.encode() not in _db_bytes(state)


def test_failed_sync_is_not_reported_as_synced(sim: IssuerSim, make_verifier: MakeVerifier) -> None:
    """The kiosk must not show "synced 5 s ago" beside OFFLINE after a sync that failed."""
    v = make_verifier()
    assert v.health(now=sim.now + 10).last_successful_sync == sim.now
    sim.close()
    assert not v.sync(now=sim.now + 100).ok
    h = v.health(now=sim.now + 110)
    assert h.offline and h.last_successful_sync == sim.now and h.sync_age_s == 110
    assert h.last_sync_attempt == sim.now + 100
    reopened = Verifier.open(v.state_dir, now=sim.now)  # kept across restarts
    assert reopened.health(now=sim.now + 110).last_successful_sync == sim.now
    reopened.close()


def test_rejected_upload_leaves_fresh_lists_online(
    sim: IssuerSim, make_verifier: MakeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 401 on the scan-log upload is an upload problem, not an offline kiosk."""
    monkeypatch.setenv(KIOSK_KEY_ENV, "a-key-the-issuer-does-not-know")
    v = make_verifier(sync=False)
    v.verify(sim.code(), now=sim.now)
    report = v.sync(now=sim.now)
    assert report.lists_ok and not report.ok and "401" in (report.upload_error or "")
    assert report.reasons == [SyncReason.UPLOAD_FAILED]
    h = v.health(now=sim.now)
    assert not h.offline and h.last_successful_sync == sim.now and "401" in (h.upload_error or "")


def test_status_exits_1_when_never_synced_or_stale(wall_sim: IssuerSim, tmp_path: Path) -> None:
    from verifier.cli import main

    sim = wall_sim  # the command line reads this machine's clock
    v = Verifier.init(tmp_path / "never", sim.url, sim.root.public(), "venue", "g")
    v.close()
    assert main(["status", "--state", str(tmp_path / "never"), "--json"]) == 1
    v = Verifier.open(tmp_path / "never", fetcher=quick_fetcher())
    assert v.sync().ok
    v.close()
    assert main(["status", "--state", str(tmp_path / "never")]) == 0
