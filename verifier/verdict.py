"""Verdicts: a decision, a reason code, a message in Chinese and English, and the fields to show (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from suishenma import Reason
from suishenma.texts import Text


class Decision(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    REFER = "REFER"  # send the person to staff (e.g. the fever clinic): never a bare denial


class VerdictReason(StrEnum):
    OK = "ok"
    STATUS_YELLOW = "status_yellow"
    STATUS_RED = "status_red"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    REPLAYED = "replayed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    TOO_OLD = "too_old"
    BAD_SIGNATURE = "bad_signature"
    DEVICE_MISMATCH = "device_mismatch"  # a device-bound code not signed by the phone it is bound to
    CREDENTIAL_EXPIRED = "credential_expired"  # the phone's day credential ran out
    UNKNOWN_KEY = "unknown_key"
    KEY_NOT_ALLOWED = "key_not_allowed"
    MALFORMED = "malformed"
    NOT_A_CODE = "not_a_code"
    MISSING_FIELDS = "missing_fields"
    NO_TRUST_LIST = "no_trust_list"
    STALE_LISTS = "stale_lists"
    NO_STATUS_LIST = "no_status_list"
    CLOCK_WRONG = "clock_wrong"  # this kiosk's clock is off by more than the scenario allows
    PASSBACK = "passback"  # this phone credential already entered here within the scenario's reentry_s
    PREVIOUS_FORM = "previous_form"  # a code of a retired form (fixed identifiers), after its issuer's window


MESSAGES: dict[VerdictReason, Text] = {
    VerdictReason.OK: Text("绿码，请通行", "Green code: go ahead"),
    VerdictReason.STATUS_YELLOW: Text("黄码：不予通行", "Yellow code: entry restricted"),
    VerdictReason.STATUS_RED: Text("红码：不予通行", "Red code: no entry"),
    VerdictReason.REVOKED: Text("此码已被撤销", "This code has been revoked"),
    VerdictReason.SUSPENDED: Text("此码已暂停使用", "This code is suspended"),
    VerdictReason.REPLAYED: Text("此码已使用过，请刷新", "Code already used: refresh it in the app"),
    VerdictReason.EXPIRED: Text("随申码已过期，请刷新", "Code expired: refresh it in the app"),
    VerdictReason.NOT_YET_VALID: Text("随申码尚未生效，请检查手机时间", "Code not valid yet: check the phone's clock"),
    VerdictReason.TOO_OLD: Text("随申码已超时，请刷新后再扫", "Code too old for this gate: refresh it"),
    VerdictReason.BAD_SIGNATURE: Text("无效码：可能被伪造或篡改", "Invalid code: forged or altered"),
    VerdictReason.DEVICE_MISMATCH: Text("此码不是本人手机生成的", "Not made by the phone it belongs to"),
    VerdictReason.CREDENTIAL_EXPIRED: Text("请联网打开随申码更新", "Phone credential expired: go online to renew"),
    VerdictReason.UNKNOWN_KEY: Text("无法识别签发方，请联系工作人员", "Unknown issuer: call staff"),
    VerdictReason.KEY_NOT_ALLOWED: Text("签发方无权签发此码", "The issuer may not issue this code"),
    VerdictReason.MALFORMED: Text("无法识别此码，请重新出示", "Unreadable code: show it again"),
    VerdictReason.NOT_A_CODE: Text("不是随申码", "Not a Suishenma code"),
    VerdictReason.MISSING_FIELDS: Text("缺少身份信息，请出示就医码", "Identity missing: show the hospital code"),
    VerdictReason.NO_TRUST_LIST: Text("名单未同步，请联系工作人员", "Lists not synced yet: call staff"),
    VerdictReason.STALE_LISTS: Text("名单已过时，请联系工作人员", "Lists out of date: call staff"),
    VerdictReason.NO_STATUS_LIST: Text("无法核对撤销名单，请联系工作人员", "Revocation list missing: call staff"),
    VerdictReason.PREVIOUS_FORM: Text(
        "旧版随申码已停用，请更新应用后刷新", "Old code format: update the app and refresh"
    ),
    VerdictReason.PASSBACK: Text(
        "此码刚在本闸机通过，一人一次，请勿重复进站", "This code just passed this gate: one entry per person"
    ),
    VerdictReason.CLOCK_WRONG: Text(
        "时钟错误：本机时间不准，请联系工作人员", "CLOCK WRONG: kiosk time is off; call staff"
    ),
}

# The core's typed rejections, as verdict reasons.
CORE_REASONS: dict[Reason, VerdictReason] = {
    Reason.TOO_LARGE: VerdictReason.NOT_A_CODE,
    Reason.WRONG_PREFIX: VerdictReason.NOT_A_CODE,
    Reason.BAD_ENCODING: VerdictReason.MALFORMED,
    Reason.BAD_COMPRESSION: VerdictReason.MALFORMED,
    Reason.MALFORMED: VerdictReason.MALFORMED,
    Reason.UNTAGGED: VerdictReason.MALFORMED,
    Reason.PAYLOAD_NOT_MAP: VerdictReason.MALFORMED,
    Reason.MISSING_CLAIM: VerdictReason.MALFORMED,
    Reason.BAD_CLAIM: VerdictReason.MALFORMED,
    Reason.UNKNOWN_KID: VerdictReason.UNKNOWN_KEY,
    Reason.ALG_MISMATCH: VerdictReason.BAD_SIGNATURE,
    Reason.BAD_SIGNATURE: VerdictReason.BAD_SIGNATURE,
    # this kiosk lacks the issuer's algorithm (SM2 without its extra): staff must install it
    Reason.ALG_UNAVAILABLE: VerdictReason.UNKNOWN_KEY,
    Reason.BAD_DEVICE_SIGNATURE: VerdictReason.DEVICE_MISMATCH,
    Reason.CREDENTIAL_EXPIRED: VerdictReason.CREDENTIAL_EXPIRED,
    Reason.EXPIRED: VerdictReason.EXPIRED,
    Reason.NOT_YET_VALID: VerdictReason.NOT_YET_VALID,
    Reason.ISSUER_MISMATCH: VerdictReason.KEY_NOT_ALLOWED,
    Reason.TYPE_NOT_ALLOWED: VerdictReason.KEY_NOT_ALLOWED,
    Reason.KEY_NOT_VALID: VerdictReason.KEY_NOT_ALLOWED,
    Reason.PREVIOUS_FORM: VerdictReason.PREVIOUS_FORM,
}


@dataclass(frozen=True)
class Verdict:
    """What the gate shows and does. ``display`` keys: masked_name, masked_id, status, issuer, code_type."""

    decision: Decision
    reason: VerdictReason
    message_zh: str
    message_en: str
    display: Mapping[str, str] = field(default_factory=dict)
    subject: str | None = None
    issuer: str | None = None
    elapsed_ms: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "decision": self.decision.value,
            "reason": self.reason.value,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "display": dict(self.display),
            "subject": self.subject,
            "issuer": self.issuer,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }
