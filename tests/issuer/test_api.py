"""API v1 behaviour: what each endpoint returns, and how it refuses bad input."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from issuer import Settings, create_app
from suishenma import CodeType, EntryStatus, Status, parse_status_list, verify

from .conftest import PERSON, Clock, bearer, enrol, person_of, query, trust_list


def test_enrol_returns_random_pseudonym_and_stores_only_masks_in_codes(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    a, b = enrol(client, keys["enrol"]), enrol(client, keys["enrol"])
    assert a != b and len(a) == 16 and int(a, 16) >= 0
    r = client.post(f"/v1/subjects/{a}/codes", json={"scenario": "hospital"}, headers=bearer(keys["mint"]))
    assert r.status_code == 200
    code = r.json()["code"]
    assert PERSON["name"] not in code
    v = verify(code, trust_list(client, home, int(clock.t)).keyring, now=int(clock.t))
    assert v.claims.masked_name == "张*三" and v.claims.masked_id == "3101**********1234"
    assert person_of(home, v.claims.subject) == a and v.claims.status is Status.GREEN
    assert r.json()["expires_at"] == v.claims.expires_at == int(clock.t) + 60


def test_venue_and_transit_codes_carry_no_identity(client: TestClient, keys: dict[str, str], home: Path) -> None:
    s = enrol(client, keys["enrol"])
    trust = trust_list(client, home, int(client.app.state.ctx.now()))  # type: ignore[attr-defined]
    for scenario in ("venue", "transit"):
        r = client.post(f"/v1/subjects/{s}/codes", json={"scenario": scenario}, headers=bearer(keys["mint"]))
        claims = verify(r.json()["code"], trust.keyring, now=r.json()["expires_at"] - 30).claims
        assert claims.masked_name is None and claims.masked_id is None


@pytest.mark.parametrize(
    ("query", "accept", "media"),
    [
        ("?format=png", "application/json", "image/png"),
        ("?format=svg", "application/json", "image/svg+xml"),
        ("", "image/png", "image/png"),
        ("", "image/svg+xml", "image/svg+xml"),
        ("", "text/html, image/*;q=0.8", "image/png"),
    ],
)
def test_mint_renders_qr_that_decodes_to_a_valid_code(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock, query: str, accept: str, media: str
) -> None:
    s = enrol(client, keys["enrol"])
    r = client.post(f"/v1/subjects/{s}/codes{query}", json={}, headers={**bearer(keys["mint"]), "Accept": accept})
    assert r.status_code == 200 and r.headers["content-type"].startswith(media)
    assert r.headers["cache-control"] == "no-store"
    if media == "image/png":
        pixels = np.asarray(Image.open(io.BytesIO(r.content)).convert("L"))
        text = zxingcpp.read_barcodes(pixels)[0].text
        verify(text, trust_list(client, home, int(clock.t)).keyring, now=int(clock.t))
    else:
        assert r.text.startswith("<svg") and "<path" in r.text


def test_mint_refuses_unsupported_accept_and_format(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    url = f"/v1/subjects/{s}/codes"
    assert client.post(url, json={}, headers={**bearer(keys["mint"]), "Accept": "text/csv"}).status_code == 406
    assert client.post(url + "?format=gif", json={}, headers=bearer(keys["mint"])).status_code == 422


def test_unknown_subject_is_404_and_malformed_subject_is_422(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/subjects/0123456789abcdef/codes", json={}, headers=bearer(keys["mint"]))
    assert r.status_code == 404 and r.json()["error"] == "not_found" and r.json()["message_zh"]
    r = client.post("/v1/subjects/NOT-HEX/codes", json={}, headers=bearer(keys["mint"]))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "path.subject"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "张三"}, "body.id_number"),
        ({"name": "", "id_number": "1"}, "body.name"),
        ({"name": 5, "id_number": "1"}, "body.name"),
        ({"name": "张三", "id_number": "1; DROP TABLE"}, "body.id_number"),
        ({"name": "张三", "id_number": "1", "admin": True}, "body.admin"),
        ({"name": "x" * 65, "id_number": "1"}, "body.name"),
    ],
)
def test_enrol_rejects_wrong_types_with_field_named(
    client: TestClient, keys: dict[str, str], body: dict[str, object], field: str
) -> None:
    r = client.post("/v1/subjects", json=body, headers=bearer(keys["enrol"]))
    assert r.status_code == 422
    assert field in [p["field"] for p in r.json()["detail"]]
    assert r.json()["message_en"] and r.json()["message_zh"]


@pytest.mark.parametrize(
    ("name", "char"),
    [
        ("张\u202e三", "U+202E"),
        ("张\x00三", "U+0000"),
        ("张\n三", "U+000A"),
        ("\x1b[31m张三", "U+001B"),
        ("张\u2028三", "U+2028"),
    ],
)
def test_enrol_refuses_names_with_control_or_bidi_characters(
    client: TestClient, keys: dict[str, str], name: str, char: str
) -> None:
    r = client.post("/v1/subjects", json={"name": name, "id_number": "1234"}, headers=bearer(keys["enrol"]))
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    problem = next(p for p in r.json()["detail"] if p["field"] == "body.name")
    assert char in problem["problem"]
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    assert query(store, "SELECT COUNT(*) FROM subjects")[0][0] == 0


def test_status_reason_and_scan_log_text_refuse_control_characters(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    r = client.put(
        f"/v1/subjects/{s}/status", json={"status": "red", "reason": "ok\u202e"}, headers=bearer(keys["status"])
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.reason"
    batch = {"kiosk_id": "kiosk", "records": [{**SCAN, "reason": "ok\r\nforged log line"}]}
    r = client.post("/v1/scan-logs", json=batch, headers=bearer(keys["kiosk"]))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.records.0.reason"


def test_enrolling_an_enrolled_id_number_again_is_409(client: TestClient, keys: dict[str, str]) -> None:
    enrol(client, keys["enrol"], {"name": "张小三", "id_number": "31010119900101123x"})
    r = client.post(
        "/v1/subjects", json={"name": "李四", "id_number": "31010119900101123X"}, headers=bearer(keys["enrol"])
    )
    assert r.status_code == 409 and r.json()["error"] == "already_enrolled" and r.json()["message_zh"]
    assert "31010119900101123" not in r.text  # the answer names neither the number nor the subject
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    assert query(store, "SELECT COUNT(*) FROM subjects")[0][0] == 1
    assert store.subject_by_id_number("31010119900101123X") is not None
    assert enrol(client, keys["enrol"], {"name": "李四", "id_number": "310101199001011235"})


def test_trailing_slash_redirect_cannot_point_at_a_hostile_host(client: TestClient) -> None:
    for path in ("/v1/trust-list/", "/v1/status-lists/SH/", "/healthz/"):
        r = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert r.status_code == 404 and r.json()["error"] == "not_found", path
        assert "location" not in r.headers and "evil.example" not in r.text


def test_malformed_json_is_422_not_500(client: TestClient, keys: dict[str, str]) -> None:
    for raw in (b"{", b"[]", b"null", b'{"name": "\xff"}', b"\x00" * 10):
        r = client.post(
            "/v1/subjects", content=raw, headers={**bearer(keys["enrol"]), "Content-Type": "application/json"}
        )
        assert r.status_code == 422, raw


def test_huge_body_is_413_and_nothing_is_stored(client: TestClient, keys: dict[str, str], home: Path) -> None:
    big = b'{"name": "' + b"a" * (2 << 20) + b'", "id_number": "1"}'
    headers = {**bearer(keys["enrol"]), "Content-Type": "application/json"}
    r = client.post("/v1/subjects", content=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"

    def chunks() -> object:  # no Content-Length: the cap must hold while streaming
        for _ in range(40):
            yield b"a" * 65536

    r = client.post("/v1/subjects", content=chunks(), headers=headers)  # type: ignore[arg-type]
    assert r.status_code == 413
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    assert query(store, "SELECT COUNT(*) FROM subjects")[0][0] == 0


def test_status_change_suspends_and_reinstates_paper_codes(
    client: TestClient, keys: dict[str, str], home: Path, clock: Clock
) -> None:
    s = enrol(client, keys["enrol"])
    r = client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(keys["mint"]))
    assert r.status_code == 201
    index, code = r.json()["status_index"], r.json()["code"]
    trust = trust_list(client, home, int(clock.t))
    claims = verify(code, trust.keyring, now=int(clock.t)).claims
    assert claims.code_type is CodeType.OFFLINE and claims.status_index == index

    def listed() -> EntryStatus:
        body = client.get("/v1/status-lists/SH").content
        return parse_status_list(body, trust.keys_for("SH"), now=int(clock.t)).status(index)

    assert listed() is EntryStatus.VALID
    r = client.put(f"/v1/subjects/{s}/status", json={"status": "red", "reason": "test"}, headers=bearer(keys["status"]))
    assert r.status_code == 200 and r.json()["offline_codes_changed"] == [index]
    assert listed() is EntryStatus.SUSPENDED
    r = client.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["mint"]))
    assert verify(r.json()["code"], trust.keyring, now=int(clock.t)).claims.status is Status.RED
    assert client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(keys["mint"])).status_code == 409
    client.put(f"/v1/subjects/{s}/status", json={"status": "green"}, headers=bearer(keys["status"]))
    assert listed() is EntryStatus.VALID


def test_revocation_is_idempotent_and_final(client: TestClient, keys: dict[str, str], home: Path, clock: Clock) -> None:
    s = enrol(client, keys["enrol"])
    index = client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(keys["mint"])).json()["status_index"]
    h = bearer(keys["revoke"])
    assert client.post(f"/v1/offline-codes/{index}/suspend", headers=h).json()["changed"] is True
    assert client.post(f"/v1/offline-codes/{index}/reinstate", headers=h).json()["state"] == "valid"
    first = client.post(f"/v1/offline-codes/{index}/revoke", headers=h)
    again = client.post(f"/v1/offline-codes/{index}/revoke", headers=h)
    assert first.json() == {"status_index": index, "state": "revoked", "changed": True}
    assert again.status_code == 200 and again.json()["changed"] is False
    assert client.post(f"/v1/offline-codes/{index}/reinstate", headers=h).status_code == 409
    assert client.post("/v1/offline-codes/999999/revoke", headers=h).status_code == 404
    assert client.post(f"/v1/offline-codes/{index}/destroy", headers=h).status_code == 422
    trust = trust_list(client, home, int(clock.t))
    lst = parse_status_list(client.get("/v1/status-lists/SH").content, trust.keys_for("SH"), now=int(clock.t))
    assert lst.status(index) is EntryStatus.INVALID
    rows = [r for r in client.app.state.ctx.service.storage.audit_rows() if r.action == "offline.state"]  # type: ignore[attr-defined]
    assert len(rows) == 3  # suspend, reinstate, revoke: the repeated revoke changed nothing and logged nothing


def test_lists_are_cacheable_with_etag_and_304(client: TestClient, keys: dict[str, str]) -> None:
    for path in ("/v1/trust-list", "/v1/status-lists/SH"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["etag"].startswith('"')
        assert "max-age=" in r.headers["cache-control"] and "public" in r.headers["cache-control"]
        again = client.get(path, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == r.headers["etag"]
        assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get("/v1/trust-list").headers["content-type"] == "application/suishenma-trustlist+cwt"
    assert client.get("/v1/status-lists/SH").headers["content-type"] == "application/statuslist+cwt"
    assert client.get("/v1/status-lists/BJ").status_code == 404


def test_status_list_version_grows_only_when_something_changed(client: TestClient, keys: dict[str, str]) -> None:
    v1 = int(client.get("/v1/status-lists/SH").headers["x-list-version"])
    assert int(client.get("/v1/status-lists/SH").headers["x-list-version"]) == v1
    s = enrol(client, keys["enrol"])
    index = client.post(f"/v1/subjects/{s}/offline-codes", headers=bearer(keys["mint"])).json()["status_index"]
    client.post(f"/v1/offline-codes/{index}/revoke", headers=bearer(keys["revoke"]))
    assert int(client.get("/v1/status-lists/SH").headers["x-list-version"]) == v1 + 1


def test_status_validity_lapses_and_then_minting_is_refused(
    client: TestClient, keys: dict[str, str], clock: Clock
) -> None:
    s = enrol(client, keys["enrol"])
    until = int(clock.t) + 30
    r = client.put(
        f"/v1/subjects/{s}/status", json={"status": "yellow", "valid_until": until}, headers=bearer(keys["status"])
    )
    assert r.status_code == 200
    minted = client.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["mint"])).json()
    assert minted["expires_at"] == until  # a code never outlives the status it shows
    clock.t += 31
    r = client.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["mint"]))
    assert r.status_code == 409 and r.json()["error"] == "status_expired"
    r = client.put(
        f"/v1/subjects/{s}/status", json={"status": "green", "valid_until": 5}, headers=bearer(keys["status"])
    )
    assert r.status_code == 409


def test_get_subject_shows_masked_identity_only(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    body = client.get(f"/v1/subjects/{s}", headers=bearer(keys["status"])).json()
    assert body["masked_name"] == "张*三" and "310101199001011234" not in str(body)


def kiosk_key(client: TestClient, name: str, scopes: tuple[str, ...] = ("kiosk",)) -> dict[str, str]:
    """Headers for a new API key named ``name``: for a kiosk, its kiosk id."""
    from issuer.api_keys import hash_api_key, new_api_key

    key = new_api_key()
    client.app.state.ctx.service.storage.api_key_create(name, hash_api_key(key), scopes, 1000.0, 0, "t")  # type: ignore[attr-defined]
    return bearer(key)


SCAN = {"seq": 1, "at": 1_790_000_000, "scenario": "venue", "decision": "ALLOW", "reason": "ok", "subject": "ab"}


def held_scans(client: TestClient, kiosk: str) -> list[tuple[object, ...]]:
    store = client.app.state.ctx.service.storage  # type: ignore[attr-defined]
    rows = query(store, "SELECT seq, decision FROM scan_logs WHERE kiosk_id = ? ORDER BY seq", (kiosk,))
    return rows


def test_scan_logs_are_idempotent_per_kiosk_and_seq(client: TestClient, keys: dict[str, str]) -> None:
    batch = {"kiosk_id": "gate-1", "records": [SCAN, {**SCAN, "seq": 2, "decision": "DENY", "reason": "expired"}]}
    h = kiosk_key(client, "gate-1")
    assert client.post("/v1/scan-logs", json=batch, headers=h).json() == {
        "accepted": 2,
        "duplicates": 0,
        "conflicts": [],
    }
    assert client.post("/v1/scan-logs", json=batch, headers=h).json() == {
        "accepted": 0,
        "duplicates": 2,
        "conflicts": [],
    }
    other = {**batch, "kiosk_id": "gate-2"}
    assert client.post("/v1/scan-logs", json=other, headers=kiosk_key(client, "gate-2")).json()["accepted"] == 2
    too_many = {"kiosk_id": "gate-1", "records": [{**SCAN, "seq": i} for i in range(1001)]}
    assert client.post("/v1/scan-logs", json=too_many, headers=h).status_code == 422
    bad = {"kiosk_id": "gate 1; rm", "records": []}
    assert client.post("/v1/scan-logs", json=bad, headers=h).status_code == 422
    assert "suishenma_scan_records_received_total" in client.get("/metrics").text


def test_kiosk_key_cannot_upload_for_another_kiosk(client: TestClient, keys: dict[str, str]) -> None:
    intruder = kiosk_key(client, "gate-1")
    forged = {"kiosk_id": "gate-2", "records": [{**SCAN, "decision": "DENY"}]}
    r = client.post("/v1/scan-logs", json=forged, headers=intruder)
    assert r.status_code == 403 and r.json()["error"] == "kiosk_mismatch"
    assert r.json()["detail"] == {"kiosk_id": "gate-2", "key_name": "gate-1"} and r.json()["message_zh"]
    assert held_scans(client, "gate-2") == []
    # the real kiosk's records are stored, not answered as duplicates of the forgery
    real = {"kiosk_id": "gate-2", "records": [SCAN]}
    r = client.post("/v1/scan-logs", json=real, headers=kiosk_key(client, "gate-2"))
    assert r.json() == {"accepted": 1, "duplicates": 0, "conflicts": []}
    assert held_scans(client, "gate-2") == [(1, "ALLOW")]


def test_admin_key_cannot_upload_for_a_kiosk(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post("/v1/scan-logs", json={"kiosk_id": "gate-1", "records": [SCAN]}, headers=bearer(keys["admin"]))
    assert r.status_code == 403 and r.json()["error"] == "kiosk_mismatch"
    assert held_scans(client, "gate-1") == []


def test_scan_log_record_rewritten_under_a_held_seq_is_a_conflict_not_acknowledged(
    client: TestClient, keys: dict[str, str]
) -> None:
    h = kiosk_key(client, "gate-1")
    client.post("/v1/scan-logs", json={"kiosk_id": "gate-1", "records": [SCAN]}, headers=h)
    rewritten = {**SCAN, "decision": "DENY", "reason": "expired"}
    batch = {"kiosk_id": "gate-1", "records": [rewritten, {**SCAN, "seq": 2}, {**SCAN, "seq": 2, "at": 5}]}
    r = client.post("/v1/scan-logs", json=batch, headers=h)
    assert r.status_code == 200
    # seq 1 contradicts the held record; the second seq 2 contradicts the first one in this batch
    assert r.json() == {"accepted": 1, "duplicates": 0, "conflicts": [1, 2]}
    assert held_scans(client, "gate-1") == [(1, "ALLOW"), (2, "ALLOW")]  # nothing overwritten
    assert 'suishenma_scan_records_received_total{outcome="conflict"} 2' in client.get("/metrics").text


def test_rate_limit_answers_429_with_retry_after_and_refills_with_time(
    settings: Settings, keys: dict[str, str]
) -> None:
    from issuer.api_keys import hash_api_key, new_api_key

    t = [float(int(time.time()))]  # the bucket is shared by workers: it runs on the (injected) wall clock
    with TestClient(create_app(settings, clock=lambda: t[0])) as client:
        key = new_api_key()
        client.app.state.ctx.service.storage.api_key_create("slow", hash_api_key(key), ["status"], 1.0, 0, "t")  # type: ignore[attr-defined]

        def ask() -> int:
            return client.get("/v1/subjects/0123456789abcdef", headers=bearer(key)).status_code

        assert [ask(), ask(), ask()] == [404, 404, 429]  # 1 request/s, bursts of 2 s
        r = client.get("/v1/subjects/0123456789abcdef", headers=bearer(key))
        assert r.status_code == 429 and r.headers["retry-after"] == "1" and r.json()["error"] == "rate_limited"
        assert r.json()["detail"] == {"retry_after_s": 1} and r.json()["message_zh"]
        t[0] += 0.5
        assert ask() == 429  # half a token is not a request
        t[0] += 0.5
        assert [ask(), ask()] == [404, 429]  # one second, one request
        t[0] += 3600
        assert [ask(), ask(), ask()] == [404, 404, 429]  # idle time refills the burst, never more
        assert client.get("/v1/subjects/0123456789abcdef", headers=bearer(keys["status"])).status_code == 404


def test_metrics_count_mints_errors_and_latency(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    client.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["mint"]))
    client.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["enrol"]))
    text = client.get("/metrics").text
    assert 'suishenma_codes_minted_total{type="dynamic"} 1' in text
    assert 'suishenma_http_responses_total{endpoint="mint_code",code="403"} 1' in text
    assert 'suishenma_http_request_seconds_bucket{endpoint="mint_code",le="+Inf"} 2' in text
    assert client.get("/healthz").json() == {"ok": True}


def test_openapi_documents_every_route_and_bearer_auth(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/subjects", "/v1/subjects/{subject}/codes", "/v1/trust-list", "/v1/scan-logs"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    mint = spec["paths"]["/v1/subjects/{subject}/codes"]["post"]
    assert mint["security"] == [{"bearer": []}]
    assert any(p["name"] == "format" for p in mint["parameters"])
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (b"", "body", "Field required"),
        (b"{not json", "body", "JSON decode error"),
        (b"[]", "body", "valid dictionary"),
        (b'{"scenario": "venue", "extra": 1}', "body.extra", "Extra inputs are not permitted"),
        (b'{"scenario": "museum"}', "body.scenario", "'venue', 'hospital', 'transit'"),
        (b'{"scenario": 5}', "body.scenario", "'venue'"),
    ],
)
def test_mint_body_is_checked_like_every_other_route(
    client: TestClient, keys: dict[str, str], body: bytes, field: str, problem: str
) -> None:
    s = enrol(client, keys["enrol"])
    h = {**bearer(keys["mint"]), "Content-Type": "application/json"}
    r = client.post(f"/v1/subjects/{s}/codes", content=body, headers=h)
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    assert r.json()["detail"][0]["field"] == field and problem in r.json()["detail"][0]["problem"]
    r = client.post(f"/v1/subjects/{s}/codes", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401  # the key is checked first, as on every route


def test_mint_without_a_scenario_makes_a_venue_code(client: TestClient, keys: dict[str, str]) -> None:
    s = enrol(client, keys["enrol"])
    r = client.post(f"/v1/subjects/{s}/codes", json={}, headers=bearer(keys["mint"]))
    assert r.status_code == 200 and r.json()["code"].startswith("SM1:")
    assert client.get(f"/v1/subjects/{s}/codes").status_code == 405
