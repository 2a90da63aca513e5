"""Device credentials at the issuer: issue, renew, limit, revoke a lost phone, status changes, audit."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from suishenma import (
    Alg,
    CodeType,
    DeviceKey,
    EntryStatus,
    SigningKey,
    Status,
    TrustList,
    parse_status_list,
    present,
    read_credential,
    verify,
)

from .conftest import Clock, bearer, enrol, query, trust_list


def _phone(alg: Alg = Alg.ES256) -> tuple[SigningKey, dict[str, str]]:
    key = SigningKey.generate(alg)
    return key, DeviceKey.of(key).to_jwk()


def _issue(client: TestClient, key: str, subject: str, jwk: object, **extra: object) -> dict[str, object]:
    r = client.post(f"/v1/subjects/{subject}/device-credentials", json={"jwk": jwk, **extra}, headers=bearer(key))
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def _listed(client: TestClient, trust: TrustList, index: int, now: int) -> EntryStatus:
    body = client.get("/v1/status-lists/SH").content
    return parse_status_list(body, trust.keys_for("SH"), now=now).status(index)


@pytest.mark.parametrize("alg", [Alg.EdDSA, Alg.ES256])
def test_phone_presents_its_credential_and_kiosks_verify_it(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock, alg: Alg
) -> None:
    s = enrol(client, keys["enrol"])
    phone, jwk = _phone(alg)
    body = _issue(client, keys["mint"], s, jwk)
    now = int(clock.t)
    assert body["expires_at"] == now + 86400 and body["status"] == "green"
    trust = trust_list(client, home, now)
    code = present(read_credential(str(body["credential"])), phone, now=now + 3600)
    v = verify(code, trust.keyring, now=now + 3601)
    assert v.claims.code_type is CodeType.DEVICE and v.claims.subject.hex() == s
    assert v.claims.status_index == body["status_index"] and v.claims.masked_name is None
    assert _listed(client, trust, int(str(body["status_index"])), now) is EntryStatus.VALID


def test_renewal_keeps_the_index_and_identity_is_on_request(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    s = enrol(client, keys["enrol"])
    phone, jwk = _phone()
    first = _issue(client, keys["mint"], s, jwk)
    clock.t += 86000
    again = _issue(client, keys["mint"], s, jwk, identity=True)
    assert again["status_index"] == first["status_index"]  # one index per device, not per day
    trust = trust_list(client, home, int(clock.t))
    code = present(read_credential(str(again["credential"])), phone, now=int(clock.t))
    claims = verify(code, trust.keyring, now=int(clock.t)).claims
    assert claims.masked_name == "张*三" and claims.masked_id == "3101**********1234"


def test_credential_never_outlives_the_status(client: TestClient, keys: dict[str, str], clock: Clock) -> None:
    s = enrol(client, keys["enrol"])
    until = int(clock.t) + 3600
    client.put(
        f"/v1/subjects/{s}/status", json={"status": "green", "valid_until": until}, headers=bearer(keys["status"])
    )
    assert _issue(client, keys["mint"], s, _phone()[1])["expires_at"] == until
    clock.t = until + 1
    r = client.post(f"/v1/subjects/{s}/device-credentials", json={"jwk": _phone()[1]}, headers=bearer(keys["mint"]))
    assert r.status_code == 409 and r.json()["error"] == "status_expired"


def test_status_change_revokes_the_old_credential_and_the_next_gets_a_new_index(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    """A person turns red: the green credential on the phone must stop working at the next sync."""
    s = enrol(client, keys["enrol"])
    phone, jwk = _phone()
    green = _issue(client, keys["mint"], s, jwk)
    old = int(str(green["status_index"]))
    r = client.put(f"/v1/subjects/{s}/status", json={"status": "red", "reason": "t"}, headers=bearer(keys["status"]))
    assert r.status_code == 200
    trust = trust_list(client, home, int(clock.t))
    assert _listed(client, trust, old, int(clock.t)) is EntryStatus.INVALID
    red = _issue(client, keys["mint"], s, jwk)
    new = int(str(red["status_index"]))
    assert new != old and red["status"] == "red"
    code = present(read_credential(str(red["credential"])), phone, now=int(clock.t))
    assert verify(code, trust.keyring, now=int(clock.t)).claims.status is Status.RED
    assert _listed(client, trust, new, int(clock.t)) is EntryStatus.VALID  # red shows red, not "revoked"
    rows = [r for r in client.app.state.ctx.service.storage.audit_rows() if r.action == "subject.status"]  # type: ignore[attr-defined]
    assert f'"device_indices":[{old}]' in rows[-1].detail


def test_lost_phone_is_revoked_for_good(client: TestClient, keys: dict[str, str], home: Path, clock: Clock) -> None:
    s = enrol(client, keys["enrol"])
    _, jwk = _phone()
    index = int(str(_issue(client, keys["mint"], s, jwk)["status_index"]))
    h = bearer(keys["revoke"])
    assert client.post(f"/v1/device-credentials/{index}/revoke", headers=h).json() == {
        "status_index": index,
        "changed": True,
    }
    assert client.post(f"/v1/device-credentials/{index}/revoke", headers=h).json()["changed"] is False
    trust = trust_list(client, home, int(clock.t))
    assert _listed(client, trust, index, int(clock.t)) is EntryStatus.INVALID
    r = client.post(f"/v1/subjects/{s}/device-credentials", json={"jwk": jwk}, headers=bearer(keys["mint"]))
    assert r.status_code == 409 and r.json()["error"] == "device_revoked"
    assert client.post("/v1/device-credentials/999999/revoke", headers=h).status_code == 404
    # a device's index is not a paper code, and a paper code is not a device
    assert client.post(f"/v1/offline-codes/{index}/reinstate", headers=h).status_code == 404
    paper = client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(keys["mint"])).json()["status_index"]
    assert client.post(f"/v1/device-credentials/{paper}/revoke", headers=h).status_code == 404


def test_active_devices_are_limited_per_person(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    indices = [int(str(_issue(client, keys["mint"], s, _phone()[1])["status_index"])) for _ in range(3)]
    r = client.post(f"/v1/subjects/{s}/device-credentials", json={"jwk": _phone()[1]}, headers=bearer(keys["mint"]))
    assert r.status_code == 409 and r.json()["error"] == "device_limit"
    client.post(f"/v1/device-credentials/{indices[0]}/revoke", headers=bearer(keys["revoke"]))
    _issue(client, keys["mint"], s, _phone()[1])  # a revoked phone frees its place


@pytest.mark.parametrize(
    ("jwk", "problem"),
    [
        ({"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43, "d": "A" * 43}, "holds a private key"),
        ({"kty": "EC", "crv": "P-384", "x": "A" * 64, "y": "A" * 64}, "OKP/Ed25519 or EC/P-256"),
        ({"kty": "EC", "crv": "P-256", "x": "_" * 43, "y": "_" * 43}, "not on the curve"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "OKP/Ed25519 or EC/P-256"),
    ],
)
def test_unusable_or_private_jwk_is_422_and_nothing_is_stored(
    client: TestClient, keys: dict[str, str], home: Path, jwk: dict[str, str], problem: str
) -> None:
    s = enrol(client, keys["enrol"])
    r = client.post(f"/v1/subjects/{s}/device-credentials", json={"jwk": jwk}, headers=bearer(keys["mint"]))
    assert r.status_code == 422 and r.json()["error"] == "invalid_input" and problem in r.json()["detail"]
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    assert query(store, "SELECT COUNT(*) FROM devices") == [(0,)]
    secret = "A" * 43
    assert not any(secret in str(row) for row in query(store, "SELECT * FROM audit"))


def test_device_credentials_need_the_mint_scope_and_are_audited(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    _, jwk = _phone()
    r = client.post(f"/v1/subjects/{s}/device-credentials", json={"jwk": jwk}, headers=bearer(keys["status"]))
    assert r.status_code == 403
    _issue(client, keys["mint"], s, jwk)
    _issue(client, keys["mint"], s, jwk)
    actions = [r.action for r in client.app.state.ctx.service.storage.audit_rows()]  # type: ignore[attr-defined]
    assert actions.count("device.register") == 1 and actions.count("device.credential") == 2
