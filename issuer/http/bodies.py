"""Request and response bodies of API v1 (pydantic lives here, at the HTTP boundary only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from suishenma import check_display_text

SUBJECT_PATTERN = r"^[0-9a-f]{16}$"
# A kiosk's id, which is also the name of its API key (a kiosk key uploads only under its own name).
KIOSK_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
KIOSK_ID_MAX = 64


def printable(value: str | None, info: ValidationInfo) -> str | None:
    """Field validator: refuse control, bidi-override, separator and unassigned characters.

    Raises:
        UsageError (a ValueError, so pydantic answers 422 naming the field).
    """
    return value if value is None else check_display_text(value, info.field_name or "text")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrolRequest(Strict):
    name: str = Field(min_length=1, max_length=64, description="Full name; only its masked form enters codes")
    id_number: str = Field(
        min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$", description="ID number; masked in codes"
    )

    _printable = field_validator("name")(printable)


class EnrolResponse(BaseModel):
    subject: str = Field(description="Random pseudonymous subject id (16 hex digits)")


class SubjectResponse(BaseModel):
    subject: str
    masked_name: str
    masked_id: str
    status: Literal["green", "yellow", "red"]
    reason: str
    valid_until: int | None


class StatusRequest(Strict):
    status: Literal["green", "yellow", "red"]
    reason: str = Field(default="", max_length=200)
    valid_until: int | None = Field(default=None, ge=0, lt=2**53, description="POSIX time the status lapses")

    _printable = field_validator("reason")(printable)


MAX_BATCH = 10_000


class StatusUpdate(StatusRequest):
    """One change of a batch: the person by ``subject`` or by ``id_number``, exactly one of them."""

    subject: str | None = Field(default=None, pattern=SUBJECT_PATTERN)
    id_number: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")

    @model_validator(mode="after")
    def _one_person(self) -> StatusUpdate:
        if (self.subject is None) == (self.id_number is None):
            raise ValueError("name the person by subject or by id_number: exactly one of them")
        return self


class StatusBatch(Strict):
    changes: list[StatusUpdate] = Field(min_length=1, max_length=MAX_BATCH)


class StatusBatchResponse(BaseModel):
    applied: int = Field(description="Changes stored; the whole batch, since it applies all or nothing")


class StatusResponse(BaseModel):
    subject: str
    status: str
    offline_codes_changed: list[int] = Field(description="Paper codes suspended or reinstated with this change")


class MintRequest(Strict):
    scenario: Literal["venue", "hospital", "transit"] = "venue"


class MintResponse(BaseModel):
    code: str
    expires_at: int


class OfflineCodeResponse(BaseModel):
    code: str
    status_index: int
    expires_at: int


class DeviceCredentialRequest(Strict):
    jwk: dict[str, Any] = Field(
        max_length=16,
        description="The phone's own public key as a JWK (OKP/Ed25519 or EC/P-256), e.g. as WebCrypto exports it:"
        " it names the phone to the issuer (max_devices) and never reaches a verifier; a private JWK is refused",
    )
    keys: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=48,
        description="One fresh public key per slot, in slot order (up to the issuer's device_batch): each"
        " credential is bound to its own key, so presentations from different slots share no key",
    )
    start: int | None = Field(
        default=None, description="A time in the first slot wanted (default: now): ask only for the slots you lack"
    )
    identity: bool = Field(default=False, description="Carry the masked name and ID number (hospitals need them)")


class SlotCredentialBody(BaseModel):
    credential: str = Field(description="The device credential, base64url; the phone presents it (SMD1: codes)")
    valid_from: int = Field(description="Start of its slot: the phone uses it from then")
    expires_at: int = Field(description="End of its slot")
    status_index: int = Field(description="Its status-list index: give it to revoke a lost phone")


class DeviceCredentialResponse(BaseModel):
    credentials: list[SlotCredentialBody]
    status: str
    slot: int = Field(description="Seconds each credential is valid")


class DeviceRevokeResponse(BaseModel):
    status_index: int
    changed: bool = Field(description="False when the device was revoked already")


class OfflineStateResponse(BaseModel):
    status_index: int
    state: Literal["valid", "revoked", "suspended"]
    changed: bool


class ScanLogRecord(Strict):
    seq: int = Field(ge=0, lt=2**63)
    at: int = Field(ge=0, lt=2**53)
    scenario: str = Field(min_length=1, max_length=32)
    decision: Literal["ALLOW", "DENY", "REFER"]
    reason: str = Field(min_length=1, max_length=64)
    subject: str | None = Field(default=None, pattern=r"^[0-9a-f]{2,64}$")
    issuer: str | None = Field(default=None, min_length=1, max_length=8)

    _printable = field_validator("scenario", "reason", "issuer")(printable)


class ScanLogBatch(Strict):
    kiosk_id: str = Field(min_length=1, max_length=KIOSK_ID_MAX, pattern=KIOSK_ID_PATTERN)
    records: list[ScanLogRecord] = Field(max_length=1000)


class ScanLogResponse(BaseModel):
    accepted: int = Field(description="Records stored by this request")
    duplicates: int = Field(description="Records already held with the same content (a harmless resend)")
    conflicts: list[int] = Field(
        description="Seqs of records whose (kiosk, seq) is held with different content: not stored, not acknowledged"
    )


class AuditResponse(BaseModel):
    rows: int
    head: str
    ok: bool
    problems: list[str]
    checkpoint_seq: int | None = Field(description="Last row the signed checkpoint vouches for (None: no checkpoint)")


class ErrorBody(BaseModel):
    error: str
    message_en: str
    message_zh: str
    detail: object = None


class TraceRequest(Strict):
    pseudonyms: list[str] = Field(
        min_length=1, max_length=10_000, description="Subjects as a scan log holds them (32 hex digits each)"
    )
    reason: str = Field(min_length=1, max_length=500, description="Why: written to the audit log with each look-up")


class TraceResult(BaseModel):
    pseudonym: str
    subject: str | None = Field(description="The person's subject id; null when no pseudonym key here opens it")


class TraceResponse(BaseModel):
    results: list[TraceResult]
