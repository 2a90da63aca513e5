"""The issuer's signed timestamp and status-list deltas, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from suishenma import parse_delta, parse_status_list, parse_timestamp

from .conftest import Clock, bearer, enrol, query, trust_list


def _timestamp(client: TestClient, home: Path, now: int) -> tuple[int, bytes, int]:
    trust = trust_list(client, home, now)
    r = client.get("/v1/status-lists/SH/timestamp")
    assert r.status_code == 200 and r.headers["content-type"] == "application/suishenma-timestamp+cwt"
    ts = parse_timestamp(r.content, trust.keys_for("SH"), now=now)
    assert ts.issuer == "SH" and len(r.content) <= 200
    return ts.version, ts.digest, ts.issued_at


def _revoke_new_code(client: TestClient, keys: dict[str, str]) -> int:
    s = enrol(client, keys["enrol"])
    index: int = client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(keys["mint"])).json()["status_index"]
    assert client.post(f"/v1/offline-codes/{index}/revoke", headers=bearer(keys["revoke"])).status_code == 200
    return index


def test_the_timestamp_names_the_current_list_and_its_digest(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    now = int(clock.t)
    trust = trust_list(client, home, now)
    entry = next(e for e in trust.issuers if e.issuer == "SH")
    assert entry.timestamp_uri == "/v1/status-lists/SH/timestamp"
    version, digest, _ = _timestamp(client, home, now)
    lst = parse_status_list(client.get("/v1/status-lists/SH").content, trust.keys_for("SH"), now=now)
    assert (version, digest) == (lst.version, lst.digest)
    _revoke_new_code(client, keys)
    after, digest_after, _ = _timestamp(client, home, now)  # re-signed at once for the new version
    assert after == version + 1 and digest_after != digest


def test_the_timestamp_is_re_signed_on_its_interval_whether_or_not_anything_changed(
    client: TestClient, home: Path, clock: Clock
) -> None:
    first = _timestamp(client, home, int(clock.t))
    clock.t += 30
    assert _timestamp(client, home, int(clock.t)) == first  # within the interval (60 s): the same
    assert "max-age=30" in client.get("/v1/status-lists/SH/timestamp").headers["cache-control"]
    clock.t += 31
    version, digest, issued_at = _timestamp(client, home, int(clock.t))
    assert (version, digest) == first[:2] and issued_at == int(clock.t)


def test_deltas_bring_any_recorded_version_to_any_later_one(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    now = int(clock.t)
    trust = trust_list(client, home, now)
    old = parse_status_list(client.get("/v1/status-lists/SH").content, trust.keys_for("SH"), now=now)
    revoked = []
    for _ in range(3):  # a version each (the list is rebuilt on the next request after a change)
        revoked.append(_revoke_new_code(client, keys))
        version, digest, _ = _timestamp(client, home, now)
    assert version == old.version + 3
    r = client.get(f"/v1/status-lists/SH/deltas/{old.version}/{version}")
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert r.headers["content-type"] == "application/suishenma-statusdelta+cbor"
    delta = parse_delta(r.content)
    assert list(delta.indices) == sorted(revoked)
    assert delta.apply_to(old).digest == digest
    step = parse_delta(client.get(f"/v1/status-lists/SH/deltas/{version - 1}/{version}").content)
    assert list(step.indices) == [revoked[-1]]


def test_deltas_that_cannot_be_given_are_404_delta_unavailable(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    version, _, _ = _timestamp(client, home, int(clock.t))
    for first, last in ((version, version + 1), (version, version), (0, version)):
        r = client.get(f"/v1/status-lists/SH/deltas/{first}/{last}")
        assert r.status_code in (404, 422)
        if r.status_code == 404:
            assert r.json()["error"] == "delta_unavailable"
    _revoke_new_code(client, keys)
    replaced, _, _ = _timestamp(client, home, int(clock.t))  # `version` replaced now, by `replaced`
    clock.t += 8 * 86400  # past the delta window: the list is re-signed, the old records pruned
    latest, _, _ = _timestamp(client, home, int(clock.t))
    assert latest == replaced + 1
    r = client.get(f"/v1/status-lists/SH/deltas/{version}/{latest}")  # replaced 8 days ago: gone
    assert r.status_code == 404 and r.json()["error"] == "delta_unavailable"
    r = client.get(f"/v1/status-lists/SH/deltas/{replaced}/{latest}")  # replaced just now: kept
    assert r.status_code == 200 and list(parse_delta(r.content).indices) == []
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    kept = query(store, "SELECT version FROM list_versions WHERE name = 'status:SH' ORDER BY version")
    assert [int(str(v[0])) for v in kept] == [latest]


def test_every_version_is_recorded_with_the_list_in_one_transaction(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    _revoke_new_code(client, keys)
    version, digest, _ = _timestamp(client, home, int(clock.t))
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    [(held,)] = query(store, "SELECT version FROM lists WHERE name = 'status:SH'")
    [record] = store.list_versions("status:SH", version, version)
    assert held == version and record.digest == digest and record.delta is not None


def test_a_current_timestamp_is_served_without_reading_the_database(
    client: TestClient, home: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kiosk asks every few minutes: within the interval the held stamp is served from memory."""
    first = _timestamp(client, home, int(clock.t))
    storage = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    reads: list[tuple[int, int]] = []
    real = storage.list_versions
    monkeypatch.setattr(storage, "list_versions", lambda name, a, b: reads.append((a, b)) or real(name, a, b))
    clock.t += 30
    assert _timestamp(client, home, int(clock.t)) == first
    assert reads == []
    clock.t += 31
    assert _timestamp(client, home, int(clock.t))[2] == int(clock.t)
    assert reads == [(first[0], first[0])]  # re-signed: the version's record read once
