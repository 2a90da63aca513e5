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
    LIST_ROLLBACK = "list_rollback"
    LIST_EXPIRED = "list_expired"
    LIST_WRONG_SIGNER = "list_wrong_signer"
    LIST_MALFORMED = "list_malformed"
    NETWORK = "network"
    KEY_FILE = "key_file"
    USAGE = "usage"


MESSAGES: dict[Reason, tuple[str, str]] = {
    Reason.TOO_LARGE: ("Input is larger than any valid code or list.", "数据超出允许的大小。"),
    Reason.WRONG_PREFIX: ("Not a Suishenma code (wrong prefix).", "不是随申码（前缀不符）。"),
    Reason.BAD_ENCODING: ("The code text is damaged (invalid Base45).", "码文本已损坏（Base45 无效）。"),
    Reason.BAD_COMPRESSION: ("The code is damaged (invalid compression).", "码已损坏（压缩数据无效）。"),
    Reason.MALFORMED: ("The code is damaged (invalid structure).", "码已损坏（结构无效）。"),
    Reason.UNTAGGED: (
        "Not a signed COSE_Sign1 message (tag 18 missing).",
        "不是已签名的 COSE_Sign1 消息（缺少标签 18）。",
    ),
    Reason.PAYLOAD_NOT_MAP: ("The signed content is not a claims map.", "签名内容不是声明映射。"),
    Reason.UNKNOWN_KID: ("Signed by an unknown key: sync the trust list.", "签名密钥未知：请同步信任列表。"),
    Reason.ALG_MISMATCH: ("Signature algorithm does not match the trusted key.", "签名算法与受信任密钥不符。"),
    Reason.BAD_SIGNATURE: ("Signature is invalid: the code is forged or altered.", "签名无效：码被伪造或篡改。"),
    Reason.ALG_UNAVAILABLE: (
        "This installation cannot check this signature algorithm (SM2 needs the sm2 extra).",
        "本机未安装此签名算法（SM2 需安装 sm2 扩展）。",
    ),
    Reason.BAD_DEVICE_SIGNATURE: (
        "The phone's signature is invalid: the code was not made by the phone its credential names.",
        "手机签名无效：此码不是由凭证绑定的手机生成的。",
    ),
    Reason.EXPIRED: ("The code has expired: refresh it in the app.", "码已过期：请在应用中刷新。"),
    Reason.CREDENTIAL_EXPIRED: (
        "The phone's day credential has expired: open the app online once to renew it.",
        "手机的当日凭证已过期：请联网打开应用更新。",
    ),
    Reason.NOT_YET_VALID: ("The code is not valid yet: check the clock.", "码尚未生效：请检查时钟。"),
    Reason.MISSING_CLAIM: ("The code lacks a required field.", "码缺少必需字段。"),
    Reason.BAD_CLAIM: ("The code has an invalid field.", "码包含无效字段。"),
    Reason.ISSUER_MISMATCH: ("The key may not sign for this issuer.", "该密钥无权为此签发方签名。"),
    Reason.TYPE_NOT_ALLOWED: ("The issuer may not issue this code type.", "签发方无权签发此类码。"),
    Reason.KEY_NOT_VALID: ("The signing key was not valid when the code was made.", "签发时签名密钥不在有效期内。"),
    Reason.LIST_ROLLBACK: ("List is older than the one held (rollback).", "列表版本低于已有版本（回滚）。"),
    Reason.LIST_EXPIRED: ("List has expired: sync again.", "列表已过期：请重新同步。"),
    Reason.LIST_WRONG_SIGNER: ("List is not signed by a trusted key.", "列表未由受信任密钥签名。"),
    Reason.LIST_MALFORMED: ("List is damaged (invalid structure).", "列表已损坏（结构无效）。"),
    Reason.NETWORK: ("Download failed: check the network.", "下载失败：请检查网络。"),
    Reason.KEY_FILE: ("Key file cannot be used.", "密钥文件无法使用。"),
    Reason.USAGE: ("Invalid arguments.", "参数无效。"),
}


class SuishenmaError(Exception):
    """Root of every error this project raises on purpose."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        en, zh = MESSAGES[reason]
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
