"""API v1 routes. Handlers are ``async`` and call SQLite inline: each write takes tens of microseconds,
less than a hop to the thread pool would cost on a single worker. Audited writes are the exception: they
run in the thread pool, so that a worker's concurrent ones share one commit of the audit chain (group
commit, ``issuer.storage.group_commit``) instead of waiting on the event loop one by one. The service's own
errors (not found, conflict, no signing key, ...) become HTTP answers in one place:
``problems.problem_response``."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from issuer.http import mint_route
from issuer.http.app_state import Context
from issuer.http.bodies import (
    SUBJECT_PATTERN,
    AuditResponse,
    DeviceCredentialRequest,
    DeviceCredentialResponse,
    DeviceRevokeResponse,
    EnrolRequest,
    EnrolResponse,
    ErrorBody,
    MintResponse,
    OfflineCodeResponse,
    OfflineStateResponse,
    ScanLogBatch,
    ScanLogResponse,
    StatusBatch,
    StatusBatchResponse,
    StatusRequest,
    StatusResponse,
    SubjectResponse,
    TraceRequest,
    TraceResponse,
)
from issuer.http.callers import Caller, Ctx, as_json, require
from issuer.http.problems import ApiError
from issuer.keys.checkpoints import verify_audit
from issuer.lists.publisher import etag_of
from issuer.service import DeviceBatch
from issuer.storage import PublishedList, ScanRecord, StatusChange
from suishenma.labels import CHECKPOINT_TYP, STATUS_DELTA_TYP, TIMESTAMP_TYP

TRUST_LIST_TYPE = "application/suishenma-trustlist+cwt"
STATUS_LIST_TYPE = "application/statuslist+cwt"
STATE_NAMES = {0: "valid", 1: "revoked", 2: "suspended"}

SubjectId = Annotated[str, Path(pattern=SUBJECT_PATTERN, description="Pseudonymous subject id")]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 422, 429, 503)
}


router = APIRouter(prefix="/v1", responses=ERRORS)


# The busiest route first: routes are matched in order. Served by ``mint_route.mint_code``; declared here for
# the OpenAPI schema, and to serve the route should the plain route be left out.
router.add_api_route(
    mint_route.PATH.removeprefix("/v1"),
    mint_route.mint_code,
    methods=["POST"],
    response_model=MintResponse,
    tags=["codes"],
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
    openapi_extra=mint_route.OPENAPI,
    summary="Mint Code",
    description="A fresh dynamic code for the phone: JSON, or the QR as PNG or SVG (`Accept` or `?format=`).",
)


@router.post("/subjects", status_code=201, response_model=EnrolResponse, tags=["subjects"])
async def enrol(body: EnrolRequest, caller: Annotated[Caller, require("enrol")]) -> Response:
    """Enrol a person; returns a random pseudonymous subject id. Name and ID number are stored here only."""
    ctx = caller.ctx
    subject = await run_in_threadpool(ctx.service.enrol, body.name, body.id_number, ctx.now(), caller.actor)
    return as_json({"subject": subject}, 201)


@router.get("/subjects/{subject}", response_model=SubjectResponse, tags=["subjects"])
async def get_subject(subject: SubjectId, caller: Annotated[Caller, require("status")]) -> Response:
    """A person's current status, with masked identity only."""
    ctx = caller.ctx
    rec = ctx.service.subject(subject)
    return as_json(
        {
            "subject": rec.subject,
            "masked_name": rec.masked_name,
            "masked_id": rec.masked_id,
            "status": rec.status,
            "reason": rec.status_reason,
            "valid_until": rec.status_until,
        }
    )


@router.put("/subjects/{subject}/status", response_model=StatusResponse, tags=["subjects"])
async def set_status(subject: SubjectId, body: StatusRequest, caller: Annotated[Caller, require("status")]) -> Response:
    """Set green, yellow or red. A non-green status suspends the person's paper codes; green reinstates them;
    any change revokes the current credentials of the person's devices (their next credential says the new status)."""
    ctx = caller.ctx
    changed = await run_in_threadpool(
        ctx.service.set_status, subject, body.status, body.reason, body.valid_until, ctx.now(), caller.actor
    )
    return as_json({"subject": subject, "status": body.status, "offline_codes_changed": changed})


STATUS_UPDATES = "/v1/status-updates"


@router.post(
    STATUS_UPDATES.removeprefix("/v1"),
    response_model=StatusBatchResponse,
    tags=["subjects"],
    responses={422: {"model": ErrorBody, "description": "invalid input, or `batch_refused` (nothing applied)"}},
)
async def set_statuses(body: StatusBatch, caller: Annotated[Caller, require("status")]) -> Response:
    """Up to 10,000 status changes in one transaction, each naming the person by `subject` or by
    `id_number`, each with the effects and the audit row of a single change. All or nothing: when a change
    names no enrolled person, none applies and the answer is 422 `batch_refused` with
    `detail.failed` = [{"index", "reason"}] (`unknown_subject`, `unknown_id_number`). Status lists are
    rebuilt once, on their next request. For larger files use `suishenma-issuer status import`.
    """
    ctx = caller.ctx
    changes = [
        StatusChange(c.status, c.reason, c.valid_until, subject=c.subject, id_number=c.id_number) for c in body.changes
    ]
    result = await run_in_threadpool(ctx.service.set_statuses, changes, ctx.now(), caller.actor, all_or_none=True)
    if result.failed:
        failed = [{"index": i, "reason": why} for i, why in result.failed]
        raise ApiError("batch_refused", {"failed": failed[:1000], "count": len(failed)})
    return as_json({"applied": result.applied})


@router.post("/subjects/{subject}/offline-codes", status_code=201, response_model=OfflineCodeResponse, tags=["codes"])
async def issue_offline(subject: SubjectId, caller: Annotated[Caller, require("mint")]) -> Response:
    """A long-lived printed code for a person without a phone; revocable through its status-list index."""
    ctx = caller.ctx
    minted = await run_in_threadpool(ctx.service.issue_offline, subject, ctx.now(), caller.actor)
    ctx.metrics.inc("suishenma_codes_minted_total", 'type="offline"')
    body = {"code": minted.code, "status_index": minted.status_index, "expires_at": minted.expires_at}
    return as_json(body, 201)


@router.post(
    "/subjects/{subject}/device-credentials", status_code=201, response_model=DeviceCredentialResponse, tags=["codes"]
)
async def issue_device_credential(
    subject: SubjectId, body: DeviceCredentialRequest, caller: Annotated[Caller, require("mint")]
) -> Response:
    """A batch of credentials for a phone, one per slot of the coming day, each bound to its own key: the
    phone then makes its own codes, offline, with the credential of the current slot.

    The first request for a phone's own key (``jwk``) registers the phone (up to ``max_devices`` per
    person: 409 ``device_limit``); later requests renew its batch. A revoked phone gets 409
    ``device_revoked``.
    \f
    The credential and the phone's presentation: docs/format.md §4.
    """
    ctx = caller.ctx
    batch = await run_in_threadpool(
        ctx.service.issue_device_batch,
        subject,
        body.jwk,
        body.keys,
        ctx.now(),
        caller.actor,
        start=body.start,
        identity=body.identity,
    )
    ctx.metrics.inc("suishenma_codes_minted_total", 'type="device_credential"', len(batch.credentials))
    return as_json(batch_json(batch, ctx.service.settings.slot), 201)


@router.post("/trace", response_model=TraceResponse, tags=["trace"])
async def trace_pseudonyms(body: TraceRequest, caller: Annotated[Caller, require("trace")]) -> Response:
    """The people behind pseudonyms from venues' scan logs (an outbreak's contact tracing). Needs the
    ``trace`` scope; every pseudonym asked about is audited with the reason, resolved or not."""
    ctx = caller.ctx
    found = ctx.service.trace(body.pseudonyms, body.reason, ctx.now(), caller.actor)
    return as_json({"results": [{"pseudonym": r.pseudonym, "subject": r.subject} for r in found]})


def batch_json(batch: DeviceBatch, slot: int) -> dict[str, object]:
    """A batch as the API and the wallet answer it."""
    return {"credentials": [asdict(c) for c in batch.credentials], "status": batch.status, "slot": slot}


@router.post("/device-credentials/{index}/revoke", response_model=DeviceRevokeResponse, tags=["codes"])
async def revoke_device(
    index: Annotated[int, Path(ge=1, lt=2**32)], caller: Annotated[Caller, require("revoke")]
) -> Response:
    """Revoke a lost phone, by any status-list index its credentials carried: final; kiosks refuse its
    codes after their next sync. Repeating the request changes nothing."""
    ctx = caller.ctx
    changed = await run_in_threadpool(ctx.service.revoke_device, index, ctx.now(), caller.actor)
    return as_json({"status_index": index, "changed": changed})


@router.post("/offline-codes/{index}/{action}", response_model=OfflineStateResponse, tags=["codes"])
async def set_offline_state(
    index: Annotated[int, Path(ge=1, lt=2**32)],
    action: Literal["revoke", "suspend", "reinstate"],
    caller: Annotated[Caller, require("revoke")],
) -> Response:
    """Revoke (final), suspend or reinstate a paper code. Repeating a request changes nothing."""
    ctx = caller.ctx
    changed = await run_in_threadpool(ctx.service.set_offline, index, action, ctx.now(), caller.actor)
    state = {"revoke": "revoked", "suspend": "suspended", "reinstate": "valid"}[action]
    return as_json({"status_index": index, "state": state, "changed": changed})


@router.get("/trust-list", tags=["lists"], responses={200: {"content": {TRUST_LIST_TYPE: {}}}, 304: {}})
async def trust_list(ctx: Ctx, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """The root-signed trust list (public; cache with ``If-None-Match``)."""
    lst = ctx.service.publisher.trust_list(ctx.now())
    return _cached(ctx, lst, TRUST_LIST_TYPE, if_none_match)


@router.get("/status-lists/{issuer_id}", tags=["lists"], responses={200: {"content": {STATUS_LIST_TYPE: {}}}, 304: {}})
async def status_list(
    issuer_id: Annotated[str, Path(max_length=8)], ctx: Ctx, if_none_match: Annotated[str | None, Header()] = None
) -> Response:
    """The issuer's signed Token Status List: 2 bits per paper code or device (public; cacheable)."""
    if issuer_id != ctx.service.settings.issuer_id:
        raise ApiError("not_found", {"issuer_id": issuer_id})
    lst = ctx.service.publisher.status_list(ctx.now())
    return _cached(ctx, lst, STATUS_LIST_TYPE, if_none_match)


@router.get("/status-lists/{issuer_id}/timestamp", tags=["lists"], responses={200: {"content": {TIMESTAMP_TYP: {}}}})
async def status_timestamp(issuer_id: Annotated[str, Path(max_length=8)], ctx: Ctx) -> Response:
    """The signed timestamp naming the current status-list version and its digest (public). Verifiers fetch it
    on every sync and judge their lists' age by its signed time; it is re-signed every ``timestamp_interval``."""
    if issuer_id != ctx.service.settings.issuer_id:
        raise ApiError("not_found", {"issuer_id": issuer_id})
    now = ctx.now()
    stamp = ctx.service.freshness.timestamp(now)
    max_age = max(0, stamp.issued_at + ctx.service.settings.timestamp_interval - now)
    headers = {"Cache-Control": f"public, max-age={max_age}", "X-List-Version": str(stamp.version)}
    return Response(stamp.body, media_type=TIMESTAMP_TYP, headers=headers)


@router.get(
    "/status-lists/{issuer_id}/deltas/{first}/{last}",
    tags=["lists"],
    responses={200: {"content": {STATUS_DELTA_TYP: {}}}, 404: {}},
)
async def status_delta(
    issuer_id: Annotated[str, Path(max_length=8)],
    first: Annotated[int, Path(ge=1, le=2**62)],
    last: Annotated[int, Path(ge=1, le=2**62)],
    ctx: Ctx,
) -> Response:
    """The changes from status-list version ``first`` to ``last`` (public). They never change: any cache may
    keep them for good. 404 ``delta_unavailable`` when ``first`` is past the delta window or the full list is
    smaller: fetch that instead."""
    if issuer_id != ctx.service.settings.issuer_id:
        raise ApiError("not_found", {"issuer_id": issuer_id})
    # composed from many stored steps: off the event loop, so other requests go on meanwhile
    body = await run_in_threadpool(ctx.service.freshness.delta, first, last, ctx.now())
    if body is None:
        raise ApiError("delta_unavailable", {"first": first, "last": last})
    headers = {"Cache-Control": "public, max-age=31536000, immutable"}
    return Response(body, media_type=STATUS_DELTA_TYP, headers=headers)


def _cached(ctx: Context, lst: PublishedList, media_type: str, if_none_match: str | None) -> Response:
    max_age = max(0, min(ctx.service.settings.list_cache_s, lst.expires_at - ctx.now()))
    headers = {"ETag": lst.etag, "Cache-Control": f"public, max-age={max_age}", "X-List-Version": str(lst.version)}
    if if_none_match is not None and lst.etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(lst.body, media_type=media_type, headers=headers)


@router.post("/scan-logs", response_model=ScanLogResponse, tags=["kiosks"])
async def scan_logs(body: ScanLogBatch, caller: Annotated[Caller, require("kiosk")]) -> Response:
    """A batch of a kiosk's verdict records. A key uploads only for the kiosk it is named after
    (``kiosk_id`` = the API key's name; admin keys too): one kiosk cannot fill another's sequence numbers.

    Resending a record (same kiosk, seq and content) is harmless and counts as a duplicate. A record whose
    seq is held with other content is listed in ``conflicts`` and is neither stored nor acknowledged.
    """
    ctx = caller.ctx
    if body.kiosk_id != caller.who.name:
        raise ApiError("kiosk_mismatch", {"kiosk_id": body.kiosk_id, "key_name": caller.who.name})
    records = [ScanRecord(r.seq, r.at, r.scenario, r.decision, r.reason, r.subject, r.issuer) for r in body.records]
    result = ctx.service.receive_scan_logs(body.kiosk_id, records, ctx.now())
    ctx.metrics.inc("suishenma_scan_records_received_total", 'outcome="accepted"', result.accepted)
    ctx.metrics.inc("suishenma_scan_records_received_total", 'outcome="duplicate"', result.duplicates)
    ctx.metrics.inc("suishenma_scan_records_received_total", 'outcome="conflict"', len(result.conflicts))
    return as_json({"accepted": result.accepted, "duplicates": result.duplicates, "conflicts": result.conflicts})


@router.get("/audit", response_model=AuditResponse, tags=["admin"])
async def audit(caller: Annotated[Caller, require("admin")]) -> Response:
    """Walk the audit log's hash chain, hold it against the signed checkpoint, and report its head hash."""
    ctx = caller.ctx
    v = verify_audit(ctx.service.settings, ctx.service.storage)
    body = {
        "rows": v.chain.rows,
        "head": v.chain.head,
        "ok": v.ok,
        "problems": list(v.problems),
        "checkpoint_seq": v.checkpoint.seq if v.checkpoint else None,
    }
    return as_json(body)


@router.get("/audit/checkpoint", tags=["lists"], responses={200: {"content": {CHECKPOINT_TYP: {}}}, 304: {}, 404: {}})
async def audit_checkpoint(ctx: Ctx, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """The latest signed checkpoint of the audit log's head (public): keep copies, and a database that
    ends before it or differs from it is caught by ``suishenma-issuer audit verify --checkpoint``. Every
    node answers the one held in the database (one node writes them); this node's file before any is."""
    settings = ctx.service.settings
    body = ctx.service.storage.checkpoint_get(settings.issuer_id)
    if body is None:
        try:
            body = settings.audit_checkpoint_path.read_bytes()
        except FileNotFoundError:
            raise ApiError("not_found", {"checkpoint": "none written yet"}) from None
    etag = etag_of(body)
    max_age = min(settings.list_cache_s, math.ceil(settings.audit_checkpoint_s))
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=CHECKPOINT_TYP, headers=headers)
