"""Every endpoint x every scope: 401 without a valid key, 403 without the scope, through with it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from issuer.api_keys import SCOPES

from .conftest import bearer, enrol

SUBJECT = "0123456789abcdef"
# (method, path, json body, scope needed); a known subject replaces {s}, a paper code's index {i}, and the
# calling key's name (which is the only kiosk it may upload for) a body's "{name}".
ENDPOINTS = [
    ("POST", "/v1/subjects", {"name": "张三", "id_number": "1234"}, "enrol"),
    ("GET", "/v1/subjects/{s}", None, "status"),
    ("PUT", "/v1/subjects/{s}/status", {"status": "yellow"}, "status"),
    ("POST", "/v1/status-updates", {"changes": [{"subject": SUBJECT, "status": "red"}]}, "status"),
    ("POST", "/v1/subjects/{s}/codes", {"scenario": "venue"}, "mint"),
    ("POST", "/v1/subjects/{s}/offline-codes", None, "mint"),
    ("POST", "/v1/offline-codes/{i}/revoke", None, "revoke"),
    ("POST", "/v1/offline-codes/{i}/suspend", None, "revoke"),
    ("POST", "/v1/offline-codes/{i}/reinstate", None, "revoke"),
    ("POST", "/v1/scan-logs", {"kiosk_id": "{name}", "records": []}, "kiosk"),
    ("GET", "/v1/audit", None, "admin"),
]
PUBLIC = ["/v1/trust-list", "/v1/status-lists/SH", "/v1/audit/checkpoint", "/healthz", "/metrics", "/openapi.json"]


@pytest.fixture()
def targets(client: TestClient, keys: dict[str, str]) -> dict[str, str]:
    s = enrol(client, keys["all"])
    index = client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(keys["all"])).json()["status_index"]
    return {"s": s, "i": str(index)}


def call(client: TestClient, method: str, path: str, body: object, headers: dict[str, str], name: str = "") -> int:
    if isinstance(body, dict):
        body = {k: name if v == "{name}" else v for k, v in body.items()}
    return client.request(method, path, json=body, headers=headers).status_code


@pytest.mark.parametrize(("method", "path", "body", "needed"), ENDPOINTS)
def test_missing_or_unknown_key_is_401(
    client: TestClient, targets: dict[str, str], method: str, path: str, body: object, needed: str
) -> None:
    url = path.format(**targets)
    for headers in ({}, bearer("ssk_unknown"), {"Authorization": "Basic dXNlcjpwYXNz"}, bearer("x" * 500)):
        r = client.request(method, url, json=body, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "body", "needed"), ENDPOINTS)
@pytest.mark.parametrize("scope", SCOPES)
def test_each_scope_opens_only_its_endpoints(
    client: TestClient,
    keys: dict[str, str],
    targets: dict[str, str],
    method: str,
    path: str,
    body: object,
    needed: str,
    scope: str,
) -> None:
    status = call(client, method, path.format(**targets), body, bearer(keys[scope]), name=scope)
    if scope == needed or scope == "admin":
        assert status not in (401, 403), (scope, path, status)
        assert status < 500
    else:
        assert status == 403, (scope, path, status)


@pytest.mark.parametrize("path", PUBLIC)
def test_public_endpoints_need_no_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_forbidden_names_the_scope_needed(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/subjects", json={"name": "张三", "id_number": "1"}, headers=bearer(keys["mint"]))
    assert r.status_code == 403 and r.json()["detail"] == {"needs": "enrol", "has": ["mint"]}
