"""Every error the API returns: a stable code, an HTTP status, and a message in English and Chinese."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

CATALOG: dict[str, tuple[int, str, str]] = {
    "unauthorized": (401, "Missing or unknown API key: send 'Authorization: Bearer <key>'.", "缺少或未知的 API 密钥。"),
    "forbidden": (403, "This API key lacks the scope this operation needs.", "此 API 密钥没有该操作所需的权限。"),
    "kiosk_mismatch": (
        403,
        "This API key uploads scan logs only for the kiosk it is named after: kiosk_id must equal the key's name.",
        "此 API 密钥只能上传与其同名终端的扫码记录：kiosk_id 必须与密钥名称一致。",
    ),
    "rate_limited": (429, "Too many requests for this API key: retry later.", "此 API 密钥请求过多，请稍后重试。"),
    "invalid_input": (422, "The request is invalid: see detail.", "请求无效，详见 detail。"),
    "not_found": (404, "No such subject, paper code or list.", "没有该对象、纸质码或列表。"),
    "conflict": (409, "The request contradicts the current state.", "请求与当前状态冲突。"),
    "already_enrolled": (
        409,
        "This ID number is already enrolled: use the existing subject instead of enrolling again.",
        "该证件号码已登记，请使用已有的登记记录，勿重复登记。",
    ),
    "device_limit": (
        409,
        "This person has as many active devices as allowed: revoke a lost or old phone first.",
        "此人已登记的设备数已达上限，请先注销丢失或不再使用的手机。",
    ),
    "device_revoked": (
        409,
        "This phone's key was revoked: make a new key pair on the phone and register it.",
        "此手机密钥已被注销，请在手机上生成新的密钥后重新登记。",
    ),
    "status_expired": (409, "The person's status has lapsed: set it again first.", "此人的状态已失效，请先重新设置。"),
    "body_too_large": (413, "Request body is too large.", "请求体过大。"),
    "not_acceptable": (406, "Ask for application/json, image/png or image/svg+xml.", "请求的格式不受支持。"),
    "unavailable": (503, "The issuer cannot sign right now: see its log.", "签发服务暂时无法签名，请查看日志。"),
    "database_unavailable": (
        503,
        "The database is unavailable: nothing was changed. Retry shortly.",
        "数据库暂时不可用，本次请求未作任何更改，请稍后重试。",
    ),
    "batch_refused": (
        422,
        "Some changes name no enrolled person: none of the batch was applied (see detail.failed).",
        "批次中有变更找不到对应人员，整批均未执行（见 detail.failed）。",
    ),
    "internal": (500, "Internal error: see the server log.", "内部错误，请查看服务器日志。"),
}


class ApiError(Exception):
    """Raised by routes; rendered by ``error_response``."""

    def __init__(self, code: str, detail: object = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(code: str, detail: object = None, headers: Mapping[str, str] | None = None) -> Response:
    status, en, zh = CATALOG[code]
    body = {"error": code, "message_en": en, "message_zh": zh, "detail": detail}
    return Response(json.dumps(body, ensure_ascii=False), status, headers, media_type="application/json")
