"""One exception root, families by who is at fault (DESIGN §7.4).

- ``CodeError``: the scanned code is not trustworthy (malformed, forged, expired, ...).
- ``ListError``: a trust list or status list is not trustworthy (forged, rolled back, expired).
- ``NetworkError``: a download failed; nothing is wrong with any data yet.
- ``KeyFileError``: a local key file is missing, unreadable or locked with another passphrase.
- ``UsageError``: the caller passed arguments that cannot work (also a ``ValueError``).

Every error carries a ``Reason`` (stable, machine-readable) and a message in English and Chinese
that tells a person what happened and, where possible, what to do.
"""

from __future__ import annotations

from enum import StrEnum

from .texts import Text


class Reason(StrEnum):
    """Stable reason codes; their values appear in logs, JSON output and verdicts."""

    TOO_LARGE = "too_large"
    WRONG_PREFIX = "wrong_prefix"
    BAD_ENCODING = "bad_encoding"
    BAD_COMPRESSION = "bad_compression"
    MALFORMED = "malformed"
    UNTAGGED = "untagged"
    PAYLOAD_NOT_MAP = "payload_not_map"
    UNKNOWN_KID = "unknown_kid"
    ALG_MISMATCH = "alg_mismatch"
    BAD_SIGNATURE = "bad_signature"
    ALG_UNAVAILABLE = "alg_unavailable"
    BAD_DEVICE_SIGNATURE = "bad_device_signature"
    EXPIRED = "expired"
    CREDENTIAL_EXPIRED = "credential_expired"
    NOT_YET_VALID = "not_yet_valid"
    MISSING_CLAIM = "missing_claim"
    BAD_CLAIM = "bad_claim"
    ISSUER_MISMATCH = "issuer_mismatch"
    TYPE_NOT_ALLOWED = "type_not_allowed"
    KEY_NOT_VALID = "key_not_valid"
    PREVIOUS_FORM = "previous_form"
    LIST_ROLLBACK = "list_rollback"
    LIST_EXPIRED = "list_expired"
    LIST_WRONG_SIGNER = "list_wrong_signer"
    LIST_MALFORMED = "list_malformed"
    LIST_DELTA_MISMATCH = "list_delta_mismatch"
    NETWORK = "network"
    KEY_FILE = "key_file"
    USAGE = "usage"


MESSAGES: dict[Reason, Text] = {
    Reason.TOO_LARGE: Text("数据超出允许的大小。", "Input is larger than any valid code or list."),
    Reason.WRONG_PREFIX: Text("不是随申码（前缀不符）。", "Not a Suishenma code (wrong prefix)."),
    Reason.BAD_ENCODING: Text("码文本已损坏（Base45 无效）。", "The code text is damaged (invalid Base45)."),
    Reason.BAD_COMPRESSION: Text("码已损坏（压缩数据无效）。", "The code is damaged (invalid compression)."),
    Reason.MALFORMED: Text("码已损坏（结构无效）。", "The code is damaged (invalid structure)."),
    Reason.UNTAGGED: Text(
        "不是已签名的 COSE_Sign1 消息（缺少标签 18）。", "Not a signed COSE_Sign1 message (tag 18 missing)."
    ),
    Reason.PAYLOAD_NOT_MAP: Text("签名内容不是声明映射。", "The signed content is not a claims map."),
    Reason.UNKNOWN_KID: Text("签名密钥未知：请同步信任列表。", "Signed by an unknown key: sync the trust list."),
    Reason.ALG_MISMATCH: Text("签名算法与受信任密钥不符。", "Signature algorithm does not match the trusted key."),
    Reason.BAD_SIGNATURE: Text("签名无效：码被伪造或篡改。", "Signature is invalid: the code is forged or altered."),
    Reason.ALG_UNAVAILABLE: Text(
        "本机未安装此签名算法（SM2 需安装 sm2 扩展）。",
        "This installation cannot check this signature algorithm (SM2 needs the sm2 extra).",
    ),
    Reason.BAD_DEVICE_SIGNATURE: Text(
        "手机签名无效：此码不是由凭证绑定的手机生成的。",
        "The phone's signature is invalid: the code was not made by the phone its credential names.",
    ),
    Reason.EXPIRED: Text("码已过期：请在应用中刷新。", "The code has expired: refresh it in the app."),
    Reason.CREDENTIAL_EXPIRED: Text(
        "手机的当日凭证已过期：请联网打开应用更新。",
        "The phone's day credential has expired: open the app online once to renew it.",
    ),
    Reason.NOT_YET_VALID: Text("码尚未生效：请检查时钟。", "The code is not valid yet: check the clock."),
    Reason.MISSING_CLAIM: Text("码缺少必需字段。", "The code lacks a required field."),
    Reason.BAD_CLAIM: Text("码包含无效字段。", "The code has an invalid field."),
    Reason.ISSUER_MISMATCH: Text("该密钥无权为此签发方签名。", "The key may not sign for this issuer."),
    Reason.TYPE_NOT_ALLOWED: Text("签发方无权签发此类码。", "The issuer may not issue this code type."),
    Reason.KEY_NOT_VALID: Text("签发时签名密钥不在有效期内。", "The signing key was not valid when the code was made."),
    Reason.PREVIOUS_FORM: Text(
        "此码为已停用的旧格式（带有固定标识）：请更新应用后刷新。",
        "This code is in a retired format (it carries a fixed identifier): update the app and refresh.",
    ),
    Reason.LIST_ROLLBACK: Text("列表版本低于已有版本（回滚）。", "List is older than the one held (rollback)."),
    Reason.LIST_EXPIRED: Text("列表已过期：请重新同步。", "List has expired: sync again."),
    Reason.LIST_WRONG_SIGNER: Text("列表未由受信任密钥签名。", "List is not signed by a trusted key."),
    Reason.LIST_MALFORMED: Text("列表已损坏（结构无效）。", "List is damaged (invalid structure)."),
    Reason.LIST_DELTA_MISMATCH: Text(
        "增量更新与本机列表或签名时间戳不符：改为下载完整列表。",
        "The list update does not fit the list held or the signed timestamp: the full list is fetched instead.",
    ),
    Reason.NETWORK: Text("下载失败：请检查网络。", "Download failed: check the network."),
    Reason.KEY_FILE: Text("密钥文件无法使用。", "Key file cannot be used."),
    Reason.USAGE: Text("参数无效。", "Invalid arguments."),
}


class SuishenmaError(Exception):
    """Root of every error this project raises on purpose."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        zh, en = MESSAGES[reason]
        self.message_en = f"{en} ({detail})" if detail else en
        self.message_zh = f"{zh}（{detail}）" if detail else zh  # the same detail in both languages
        super().__init__(self.message_en)


class CodeError(SuishenmaError):
    """The scanned code cannot be trusted."""


class CodeFormatError(CodeError):
    """The code is not well formed (prefix, Base45, zlib, CBOR, COSE structure, sizes)."""


class CodeSignatureError(CodeError):
    """Unknown key, algorithm mismatch or invalid signature."""


class CodeTimeError(CodeError):
    """The code is expired or not yet valid at the given instant."""


class CodeClaimsError(CodeError):
    """Claims are missing, mistyped, or not allowed for the signing key."""


class ListError(SuishenmaError):
    """A trust list or status list cannot be trusted or used."""


class NetworkError(SuishenmaError):
    """A download failed (timeout, refused, too large, bad HTTP status)."""


class KeyFileError(SuishenmaError):
    """A key file is missing, unreadable, of an unsupported type or wrongly encrypted."""


class UsageError(SuishenmaError, ValueError):
    """The caller passed arguments that cannot work."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.USAGE, detail)
