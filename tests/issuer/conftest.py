"""Issuer fixtures: an initialised issuer folder, API keys per scope, an in-process app and a live server."""

from __future__ import annotations

import contextlib
import io
import itertools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from issuer import Settings, create_app
from issuer.api_keys import SCOPES, hash_api_key, new_api_key
from issuer.keys.pseudonym_keys import load_pseudonym_keys
from issuer.keys.sealing import Sealer
from issuer.opening import open_storage
from issuer.storage.sql import SqlStorage
from issuer.storage.sqlite import SQLiteStorage
from suishenma import TrustList, load_verification_key, parse_trust_list
from testing.live_issuer import LiveIssuer, init_dir

from ..pg_server import PgServer

PERSON = {"name": "张小三", "id_number": "310101199001011234"}
_people = itertools.count(1)


def new_person() -> dict[str, str]:
    """Another person like ``PERSON`` with an ID number not enrolled yet (same mask: 3101**********1234)."""
    return {"name": PERSON["name"], "id_number": f"310101{next(_people):08d}1234"}


class Clock:
    """The app's clock, moved by tests; it starts at the real time because init signs lists with it."""

    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend: tests of the storage and the API run on both. A module that tests something
    else (a browser, a CLI convention) overrides this fixture with one backend."""
    return str(request.param)


@pytest.fixture()
def database_url(backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """'' for SQLite; for PostgreSQL a fresh database, also in the environment, so that the CLI and issuer
    processes started by the test use it as an operator's would."""
    if backend == "sqlite":
        monkeypatch.delenv("SUISHENMA_ISSUER_DATABASE_URL", raising=False)
        return ""
    server: PgServer = request.getfixturevalue("pg")
    url = server.create_database()
    monkeypatch.setenv("SUISHENMA_ISSUER_DATABASE_URL", url)
    return url


@pytest.fixture()
def home(tmp_path: Path, database_url: str) -> Path:
    with contextlib.redirect_stdout(io.StringIO()):
        init_dir(tmp_path)
    return tmp_path


@pytest.fixture()
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SqlStorage]:
    """A bare storage on each backend (a fresh SQLite file, or a fresh PostgreSQL database), no issuer folder."""
    sealer = Sealer.generate()
    if backend == "sqlite":
        s: SqlStorage = SQLiteStorage(tmp_path / "i.db", sealer)
    else:
        from issuer.storage.postgres import PostgresStorage

        server: PgServer = request.getfixturevalue("pg")
        s = PostgresStorage(server.create_database(), sealer)
    yield s
    s.close()


@pytest.fixture()
def settings(home: Path) -> Settings:
    return Settings(base_dir=home, demo_wallet=True)


def query(store: object, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of a read-only statement (``?`` placeholders) on either backend, for tests that look underneath:
    read on a connection of the test's own to the storage's database, never through the storage."""
    if isinstance(store, SQLiteStorage):
        conn = sqlite3.connect(store.path)
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()
    import psycopg

    from issuer.storage.postgres import PostgresStorage

    assert isinstance(store, PostgresStorage)
    with psycopg.connect(store.url) as pg:
        return [tuple(r) for r in pg.execute(sql.replace("?", "%s"), params).fetchall()]  # type: ignore[arg-type]


def write_underneath(home: Path, *statements: str) -> None:
    """Run ``statements`` in one transaction on the database of the issuer in ``home`` (the backend comes
    from the environment) on a connection of the test's own: someone with write access to the database
    edits it, the issuer's storage knows nothing of it."""
    settings = Settings(base_dir=home)
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as pg:  # commits when the block ends
            for statement in statements:
                pg.execute(statement)  # type: ignore[arg-type]
        return
    conn = sqlite3.connect(settings.db_path)
    try:
        with conn:  # commits when the block ends
            for statement in statements:
                conn.execute(statement)
    finally:
        conn.close()


def storage_of(home: Path) -> SqlStorage:
    """The issuer's storage in ``home``, as the issuer opens it (the backend comes from the environment)."""
    return open_storage(Settings(base_dir=home))


@pytest.fixture()
def keys(settings: Settings) -> dict[str, str]:
    """One API key per scope (named after it), plus ``all`` holding every scope but admin."""
    store = open_storage(settings)
    made = {}
    now = int(time.time())
    for scope in (*SCOPES, "all"):
        key = new_api_key()
        scopes = [s for s in SCOPES if s != "admin"] if scope == "all" else [scope]
        store.api_key_create(scope, hash_api_key(key), scopes, 1000.0, now, "test")
        made[scope] = key
    store.close()
    return made


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def app(settings: Settings, clock: Clock, keys: dict[str, str]) -> FastAPI:
    return create_app(settings, clock=clock)


@pytest.fixture()
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def staff_headers(base: Path) -> dict[str, str]:
    """Bearer headers of a new API key in the issuer folder ``base`` with every scope but admin (a desk's)."""
    key = new_api_key()
    store = storage_of(base)
    store.api_key_create("staff", hash_api_key(key), [s for s in SCOPES if s != "admin"], 1000.0, 0, "test")
    store.close()
    return bearer(key)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def enrol(client: TestClient, key: str, person: dict[str, str] | None = None) -> str:
    """Enrol ``person``, by default a new one each call."""
    r = client.post("/v1/subjects", json=person or new_person(), headers=bearer(key))
    assert r.status_code == 201, r.text
    subject: str = r.json()["subject"]
    return subject


def person_of(home: Path, sub: bytes) -> str:
    """The subject id a code's pseudonym hides, opened with the issuer's pseudonym keys (as ``trace`` does)."""
    return load_pseudonym_keys(home / "keys").current.open(sub)[0].hex()


def trust_list(client: TestClient, home: Path, now: int) -> TrustList:
    r = client.get("/v1/trust-list")
    assert r.status_code == 200
    return parse_trust_list(r.content, load_verification_key(home / "keys" / "root.pub"), now=now)


@pytest.fixture()
def live(home: Path, keys: dict[str, str]) -> Iterator[LiveIssuer]:
    server = LiveIssuer(home, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"})  # schemathesis covers the demo too
    with server:
        yield server
