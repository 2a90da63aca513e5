"""Phone credentials at the issuer: a batch of slot credentials, renewal, limits, a lost phone, status changes,
random status-list indices, audit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from issuer import IssuerService, Settings
from issuer.opening import open_storage
from suishenma import (
    Alg,
    CodeTimeError,
    CodeType,
    DeviceKey,
    EntryStatus,
    Reason,
    SigningKey,
    Status,
    TrustList,
    load_verification_key,
    parse_status_list,
    parse_trust_list,
    present,
    read_credential,
    verify,
)

from .conftest import Clock, bearer, enrol, person_of, query, trust_list

K = 6  # the issuer's default batch: 4-hour slots
SLOT = 86400 // K


def _phone(alg: Alg = Alg.ES256) -> tuple[SigningKey, dict[str, str]]:
    key = SigningKey.generate(alg)
    return key, DeviceKey.of(key).to_jwk()


def _slot_keys(n: int = K, alg: Alg = Alg.ES256) -> tuple[list[SigningKey], list[dict[str, str]]]:
    keys = [SigningKey.generate(alg) for _ in range(n)]
    return keys, [DeviceKey.of(k).to_jwk() for k in keys]


def _issue(
    client: TestClient,
    key: str,
    subject: str,
    jwk: object,
    slot_jwks: list[dict[str, str]] | None = None,
    **extra: object,
) -> dict[str, object]:
    body = {"jwk": jwk, "keys": slot_jwks if slot_jwks is not None else _slot_keys()[1], **extra}
    r = client.post(f"/v1/subjects/{subject}/device-credentials", json=body, headers=bearer(key))
    assert r.status_code == 201, r.text
    answer: dict[str, object] = r.json()
    return answer


def _creds(body: dict[str, object]) -> list[dict[str, int | str]]:
    creds = body["credentials"]
    assert isinstance(creds, list)
    return creds


def _listed(client: TestClient, trust: TrustList, index: int, now: int) -> EntryStatus:
    body = client.get("/v1/status-lists/SH").content
    return parse_status_list(body, trust.keys_for("SH"), now=now).status(index)


@pytest.mark.parametrize("alg", [Alg.EdDSA, Alg.ES256])
def test_phone_gets_one_credential_per_slot_each_bound_to_its_own_key(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock, alg: Alg
) -> None:
    s = enrol(client, keys["enrol"])
    _, jwk = _phone(alg)
    slot_keys, slot_jwks = _slot_keys(alg=alg)
    body = _issue(client, keys["mint"], s, jwk, slot_jwks)
    now = int(clock.t)
    first = now - now % SLOT
    creds = _creds(body)
    assert body["slot"] == SLOT and body["status"] == "green" and len(creds) == K
    assert [c["valid_from"] for c in creds] == [first + i * SLOT for i in range(K)]
    assert [c["expires_at"] for c in creds] == [first + (i + 1) * SLOT for i in range(K)]
    trust = trust_list(client, home, now)
    seen = []
    for c, key in zip(creds, slot_keys, strict=True):
        at = int(c["valid_from"]) + 60  # type: ignore[arg-type]
        v = verify(present(read_credential(str(c["credential"])), key, now=at), trust.keyring, now=at)
        assert v.claims.code_type is CodeType.DEVICE and person_of(home, v.claims.subject) == s
        assert v.claims.status_index == c["status_index"] and v.claims.masked_name is None and v.claims.implied
        assert v.expires_at <= int(c["expires_at"])  # type: ignore[arg-type]
        assert v.claims.device_key is not None
        seen.append((v.claims.subject, v.claims.status_index, v.claims.device_key.thumbprint()))
        assert _listed(client, trust, int(c["status_index"]), now) is EntryStatus.VALID
    # nothing a verifier sees repeats across the batch: pseudonym, index and key are each its own
    for column in zip(*seen, strict=True):
        assert len(set(column)) == K


def test_a_slot_credential_cannot_be_spent_outside_its_slot(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    """K credentials must not mean K passes: each is valid in its own slot only."""
    s = enrol(client, keys["enrol"])
    slot_keys, slot_jwks = _slot_keys()
    creds = _creds(_issue(client, keys["mint"], s, _phone()[1], slot_jwks))
    now = int(clock.t)
    trust = trust_list(client, home, now)
    valid_now = []
    for c, key in zip(creds, slot_keys, strict=True):
        try:
            verify(present(read_credential(str(c["credential"])), key, now=now), trust.keyring, now=now)
            valid_now.append(c["status_index"])
        except CodeTimeError as exc:
            assert exc.reason is Reason.NOT_YET_VALID
    assert len(valid_now) == 1


def test_renewal_asks_for_the_slots_it_lacks_with_new_indices_and_identity_on_request(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    s = enrol(client, keys["enrol"])
    _, jwk = _phone()
    first = _creds(_issue(client, keys["mint"], s, jwk))
    clock.t += 12 * 3600
    slot_keys, slot_jwks = _slot_keys(3)
    again = _creds(_issue(client, keys["mint"], s, jwk, slot_jwks, start=first[-1]["expires_at"], identity=True))
    assert [c["valid_from"] for c in again] == [int(first[-1]["expires_at"]) + i * SLOT for i in range(3)]
    assert not {c["status_index"] for c in again} & {c["status_index"] for c in first}
    at = int(again[0]["valid_from"]) + 10
    trust = trust_list(client, home, int(clock.t))
    code = present(read_credential(str(again[0]["credential"])), slot_keys[0], now=at)
    claims = verify(code, trust.keyring, now=at).claims
    assert claims.masked_name == "张*三" and claims.masked_id == "3101**********1234"
    r = client.post(
        f"/v1/subjects/{s}/device-credentials",
        json={"jwk": jwk, "keys": slot_jwks, "start": int(clock.t) + 2 * 86400},
        headers=bearer(keys["mint"]),
    )
    assert r.status_code == 422 and r.json()["error"] == "batch_start_out_of_range"


def test_credentials_never_outlive_the_status(client: TestClient, keys: dict[str, str], clock: Clock) -> None:
    s = enrol(client, keys["enrol"])
    now = int(clock.t)
    until = now - now % SLOT + 3 * SLOT  # the end of the third slot
    client.put(
        f"/v1/subjects/{s}/status", json={"status": "green", "valid_until": until}, headers=bearer(keys["status"])
    )
    creds = _creds(_issue(client, keys["mint"], s, _phone()[1]))
    assert len(creds) == 3 and creds[-1]["expires_at"] == until
    clock.t = until + 10  # in the fourth slot, which the status no longer covers: only whole slots are signed
    client.put(
        f"/v1/subjects/{s}/status", json={"status": "green", "valid_until": until + 600}, headers=bearer(keys["status"])
    )
    r = client.post(
        f"/v1/subjects/{s}/device-credentials",
        json={"jwk": _phone()[1], "keys": _slot_keys()[1]},
        headers=bearer(keys["mint"]),
    )
    assert r.status_code == 409 and r.json()["error"] == "status_ends_in_slot"
    clock.t = until + 601
    r = client.post(
        f"/v1/subjects/{s}/device-credentials",
        json={"jwk": _phone()[1], "keys": _slot_keys()[1]},
        headers=bearer(keys["mint"]),
    )
    assert r.status_code == 409 and r.json()["error"] == "status_expired"


def test_status_change_revokes_every_live_credential_and_the_next_batch_says_the_new_status(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    """A person turns red: every green credential on every phone must stop working at the next sync."""
    s = enrol(client, keys["enrol"])
    _, jwk = _phone()
    green = _creds(_issue(client, keys["mint"], s, jwk)) + _creds(_issue(client, keys["mint"], s, _phone()[1]))
    old = sorted(int(c["status_index"]) for c in green)
    r = client.put(f"/v1/subjects/{s}/status", json={"status": "red", "reason": "t"}, headers=bearer(keys["status"]))
    assert r.status_code == 200
    trust = trust_list(client, home, int(clock.t))
    assert {_listed(client, trust, i, int(clock.t)) for i in old} == {EntryStatus.INVALID}
    slot_keys, slot_jwks = _slot_keys()
    red = _creds(_issue(client, keys["mint"], s, jwk, slot_jwks))
    assert not {int(c["status_index"]) for c in red} & set(old)
    code = present(read_credential(str(red[0]["credential"])), slot_keys[0], now=int(clock.t))
    assert verify(code, trust.keyring, now=int(clock.t)).claims.status is Status.RED
    assert _listed(client, trust, int(red[0]["status_index"]), int(clock.t)) is EntryStatus.VALID  # red shows red
    rows = [r for r in client.app.state.ctx.service.storage.audit_rows() if r.action == "subject.status"]  # type: ignore[attr-defined]
    assert f'"device_indices":[{",".join(map(str, old))}]' in rows[-1].detail


def test_lost_phone_is_revoked_for_good_with_every_live_credential(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    s = enrol(client, keys["enrol"])
    _, jwk = _phone()
    creds = _creds(_issue(client, keys["mint"], s, jwk))
    index = int(creds[2]["status_index"])
    h = bearer(keys["revoke"])
    assert client.post(f"/v1/device-credentials/{index}/revoke", headers=h).json() == {
        "status_index": index,
        "changed": True,
    }
    assert client.post(f"/v1/device-credentials/{index}/revoke", headers=h).json()["changed"] is False
    trust = trust_list(client, home, int(clock.t))
    assert {_listed(client, trust, int(c["status_index"]), int(clock.t)) for c in creds} == {EntryStatus.INVALID}
    r = client.post(
        f"/v1/subjects/{s}/device-credentials", json={"jwk": jwk, "keys": _slot_keys()[1]}, headers=bearer(keys["mint"])
    )
    assert r.status_code == 409 and r.json()["error"] == "device_revoked"
    assert client.post("/v1/device-credentials/999999/revoke", headers=h).status_code == 404
    # a phone's index is not a paper code, and a paper code is not a phone
    assert client.post(f"/v1/offline-codes/{index}/reinstate", headers=h).status_code == 404
    paper = client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(keys["mint"])).json()["status_index"]
    assert client.post(f"/v1/device-credentials/{paper}/revoke", headers=h).status_code == 404


def test_active_phones_are_limited_per_person(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    indices = [int(_creds(_issue(client, keys["mint"], s, _phone()[1]))[0]["status_index"]) for _ in range(3)]
    r = client.post(
        f"/v1/subjects/{s}/device-credentials",
        json={"jwk": _phone()[1], "keys": _slot_keys()[1]},
        headers=bearer(keys["mint"]),
    )
    assert r.status_code == 409 and r.json()["error"] == "device_limit"
    client.post(f"/v1/device-credentials/{indices[0]}/revoke", headers=bearer(keys["revoke"]))
    _issue(client, keys["mint"], s, _phone()[1])  # a revoked phone frees its place


def test_a_batch_reusing_a_key_or_longer_than_k_is_refused(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    _, jwks = _slot_keys(2)
    h = bearer(keys["mint"])
    r = client.post(
        f"/v1/subjects/{s}/device-credentials", json={"jwk": _phone()[1], "keys": [jwks[0], jwks[0]]}, headers=h
    )
    assert r.status_code == 422 and "two keys are the same" in r.json()["detail"]
    r = client.post(
        f"/v1/subjects/{s}/device-credentials", json={"jwk": _phone()[1], "keys": _slot_keys(K + 1)[1]}, headers=h
    )
    assert r.status_code == 422 and f"give 1 to {K} keys" in r.json()["detail"]


@pytest.mark.parametrize(
    ("jwk", "problem"),
    [
        ({"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43, "d": "A" * 43}, "holds a private key"),
        ({"kty": "EC", "crv": "P-384", "x": "A" * 64, "y": "A" * 64}, "OKP/Ed25519 or EC/P-256"),
        ({"kty": "EC", "crv": "P-256", "x": "_" * 43, "y": "_" * 43}, "not on the curve"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "OKP/Ed25519 or EC/P-256"),
    ],
)
@pytest.mark.parametrize("where", ["phone", "slot"])
def test_unusable_or_private_jwk_is_422_and_nothing_is_stored(
    client: TestClient, keys: dict[str, str], jwk: dict[str, str], problem: str, where: str
) -> None:
    s = enrol(client, keys["enrol"])
    body = {"jwk": jwk, "keys": _slot_keys()[1]} if where == "phone" else {"jwk": _phone()[1], "keys": [jwk]}
    r = client.post(f"/v1/subjects/{s}/device-credentials", json=body, headers=bearer(keys["mint"]))
    assert r.status_code == 422 and r.json()["error"] == "invalid_input" and problem in r.json()["detail"]
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    assert query(store, "SELECT COUNT(*) FROM devices") == [(0,)]
    secret = "A" * 43
    assert not any(secret in str(row) for row in query(store, "SELECT * FROM audit"))


def test_batches_need_the_mint_scope_and_are_audited(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    _, jwk = _phone()
    r = client.post(
        f"/v1/subjects/{s}/device-credentials",
        json={"jwk": jwk, "keys": _slot_keys()[1]},
        headers=bearer(keys["status"]),
    )
    assert r.status_code == 403
    _issue(client, keys["mint"], s, jwk)
    _issue(client, keys["mint"], s, jwk)
    actions = [r.action for r in client.app.state.ctx.service.storage.audit_rows()]  # type: ignore[attr-defined]
    assert actions.count("device.register") == 1 and actions.count("device.batch") == 2


def test_a_changed_batch_size_is_in_the_next_trust_list_at_once(settings: Settings, home: Path) -> None:
    """Verifiers take a credential's slot from the trust list: the list must follow the setting, or every
    phone's new credentials would expire at the wrong time at every kiosk."""
    now = int(time.time())
    root = load_verification_key(home / "keys" / "root.pub")
    for k in (6, 8):
        service = IssuerService(settings.model_copy(update={"device_batch": k}), open_storage(settings))
        try:
            body = service.publisher.trust_list(now).body
        finally:
            service.storage.close()
        assert {e.slot for e in parse_trust_list(body, root, now=now).issuers} == {86400 // k}
