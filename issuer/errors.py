"""One error root for the issuer, families by who is at fault, and every message it shows in one catalogue.

- ``CallerError``: the request or the command's input is wrong (a file, an argument, a body, a key).
- ``NotFound``: what the caller names does not exist (a caller error).
- ``Conflict``: the request contradicts the stored state (``AlreadyEnrolled``, ``DeviceLimit``, ...).
- ``ConfigError``: this issuer's folder, settings or key files cannot be used; the operator must act.
- ``StorageUnavailable``: the database cannot be reached; nothing was changed, a retry may succeed.

Each error carries a ``problem`` (a stable reason code) and ``message_zh``/``message_en`` made from the
catalogue below (``CATALOGUE``), Chinese first as everywhere in the project (``suishenma.texts.Text``). The HTTP
answers are made from these errors in one place, ``issuer.http.problems``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from suishenma.keys import PASSPHRASE_ENV
from suishenma.texts import Text

# Where a token key's PIN and PKCS#11 module come from (``issuer.keys.pkcs11_tokens``)
PIN_ENV = "SUISHENMA_PKCS11_PIN"
MODULE_ENV = "SUISHENMA_PKCS11_MODULE"

INIT = "suishenma-issuer init"


class Problem(StrEnum):
    """Stable reason codes: logs, ``/healthz``, API answers and tests name them."""

    # The HTTP answers' error codes (``issuer.http.problems``)
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    KIOSK_MISMATCH = "kiosk_mismatch"
    RATE_LIMITED = "rate_limited"
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    DELTA_UNAVAILABLE = "delta_unavailable"
    CONFLICT = "conflict"
    ALREADY_ENROLLED = "already_enrolled"
    DEVICE_LIMIT = "device_limit"
    DEVICE_REVOKED = "device_revoked"
    STATUS_EXPIRED = "status_expired"
    BODY_TOO_LARGE = "body_too_large"
    NOT_ACCEPTABLE = "not_acceptable"
    UNAVAILABLE = "unavailable"  # cannot sign for another reason: the log says which
    DATABASE_UNAVAILABLE = "database_unavailable"
    BATCH_REFUSED = "batch_refused"
    INTERNAL = "internal"
    # Why the issuer cannot sign (``/healthz`` answers these as ``reason``)
    NOT_INITIALISED = "not_initialised"
    KEY_FILE_MISSING = "key_file_missing"
    KEY_FILE_UNREADABLE = "key_file_unreadable"
    KEY_FILE_DAMAGED = "key_file_damaged"
    PASSPHRASE_MISSING = "passphrase_missing"
    PASSPHRASE_WRONG = "passphrase_wrong"
    KEY_NOT_ENCRYPTED = "key_not_encrypted"
    KEYS_ENCRYPTED = "keys_encrypted"
    NO_TRUST_LIST = "no_trust_list"
    # A signing key in a PKCS#11 token (an HSM): ``issuer.keys.pkcs11_tokens``
    TOKEN_MODULE_MISSING = "token_module_missing"
    TOKEN_MISSING = "token_missing"
    TOKEN_KEY_MISSING = "token_key_missing"
    TOKEN_KEY_UNUSABLE = "token_key_unusable"
    TOKEN_KEY_EXISTS = "token_key_exists"
    TOKEN_FAILED = "token_failed"
    PIN_MISSING = "pin_missing"
    PIN_WRONG = "pin_wrong"
    PIN_LOCKED = "pin_locked"
    TOKEN_URI_INVALID = "token_uri_invalid"
    TOKEN_KEY_NOT_ROTATED = "token_key_not_rotated"
    # The data key (names and ID numbers sealed at rest)
    DATA_KEY_NOT_OPENED = "data_key_not_opened"
    DATA_KEY_MISSING = "data_key_missing"
    PSEUDONYM_KEY_MISSING = "pseudonym_key_missing"
    TRACE_REASON_MISSING = "trace_reason_missing"
    TRACE_TOO_MANY = "trace_too_many"
    PSEUDONYM_MALFORMED = "pseudonym_malformed"
    BATCH_START_OUT_OF_RANGE = "batch_start_out_of_range"
    STATUS_ENDS_IN_SLOT = "status_ends_in_slot"
    DATA_KEY_UNREADABLE = "data_key_unreadable"
    DATA_KEY_DAMAGED = "data_key_damaged"
    DATA_KEY_PASSPHRASE_MISSING = "data_key_passphrase_missing"
    DATA_KEY_PASSPHRASE_WRONG = "data_key_passphrase_wrong"
    NOT_SEALED = "not_sealed"
    SEALED_WITH_UNKNOWN_KEY = "sealed_with_unknown_key"
    SEAL_DOES_NOT_OPEN = "seal_does_not_open"
    # Settings
    SETTINGS_INVALID = "settings_invalid"
    SETTINGS_FILE_MISSING = "settings_file_missing"
    SETTINGS_FILE_UNREADABLE = "settings_file_unreadable"
    SETTINGS_FILE_NOT_TOML = "settings_file_not_toml"
    IDENTITY_FILE_DAMAGED = "identity_file_damaged"
    FOLDER_OF_ANOTHER_ISSUER = "folder_of_another_issuer"
    # People, codes, devices, API keys
    NO_SUBJECT = "no_subject"
    NO_OFFLINE_CODE = "no_offline_code"
    NO_DEVICE_CREDENTIAL = "no_device_credential"
    NO_API_KEY = "no_api_key"
    API_KEY_EXISTS = "api_key_exists"
    UNKNOWN_SCOPES = "unknown_scopes"
    VALID_UNTIL_PAST = "valid_until_past"
    VALID_UNTIL_PAST_IN_BATCH = "valid_until_past_in_batch"
    PAPER_CODE_NOT_GREEN = "paper_code_not_green"
    OFFLINE_CODE_REVOKED = "offline_code_revoked"
    # Files given to commands
    NOT_A_SUBJECT_ID = "not_a_subject_id"
    TOO_MANY_SUBJECTS = "too_many_subjects"
    CSV_HEADER = "csv_header"
    CSV_UNREADABLE = "csv_unreadable"
    CSV_NOT_UTF8 = "csv_not_utf8"
    # Keys, lists and federation
    KEY_ROTATED_MEANWHILE = "key_rotated_meanwhile"
    LIST_VERSION_NOT_ABOVE = "list_version_not_above"
    TRUST_LIST_VERSION_NOT_ABOVE = "trust_list_version_not_above"
    TRUST_LIST_LACKS_CURRENT_KEY = "trust_list_lacks_current_key"
    OWN_ROOT_EXISTS = "own_root_exists"
    ANOTHER_ROOT_PINNED = "another_root_pinned"
    REQUEST_KID_MISMATCH = "request_kid_mismatch"
    REQUEST_TOO_LARGE = "request_too_large"
    NOT_A_REQUEST = "not_a_request"
    REQUEST_NOT_ONE_ISSUER = "request_not_one_issuer"
    REQUEST_ALTERED = "request_altered"
    REQUEST_REPEATS_ISSUER = "request_repeats_issuer"
    REQUEST_REPEATS_KEY = "request_repeats_key"
    STATUS_URI_NOT_ABSOLUTE = "status_uri_not_absolute"
    STATUS_URI_MISMATCH = "status_uri_mismatch"
    TRUST_LIST_KEY_UNCONFIRMED = "trust_list_key_unconfirmed"
    TRUST_LIST_REQUEST_STALE = "trust_list_request_stale"
    TRUST_LIST_CURRENT_OUTDATED = "trust_list_current_outdated"
    TRUST_LIST_CURRENT_EXPIRED = "trust_list_current_expired"
    EXPECTED_KEY_NOT_REQUESTED = "expected_key_not_requested"
    # The audit chain and its checkpoints; copying a database
    CHECKPOINT_DOES_NOT_VERIFY = "checkpoint_does_not_verify"
    CHECKPOINT_CONTRADICTED = "checkpoint_contradicted"
    COPY_TARGET_NOT_EMPTY = "copy_target_not_empty"
    COPY_INCOMPLETE = "copy_incomplete"
    COPY_CHAIN_BROKEN = "copy_chain_broken"
    BACKUP_TARGET_NOT_EMPTY = "backup_target_not_empty"
    BACKUP_UNREADABLE = "backup_unreadable"
    BACKUP_OTHER_BACKEND = "backup_other_backend"
    BACKUP_FILE_MISSING = "backup_file_missing"
    BACKUP_FILE_DIFFERS = "backup_file_differs"
    BACKUP_TOOL_FAILED = "backup_tool_failed"
    RESTORE_TARGET_NOT_EMPTY = "restore_target_not_empty"
    # The specific words behind the API's generic ones
    ID_NUMBER_ENROLLED = "id_number_enrolled"
    TOO_MANY_DEVICES = "too_many_devices"
    DEVICE_KEY_REVOKED = "device_key_revoked"
    STATUS_LAPSED = "status_lapsed"
    DATABASE_UNREACHABLE = "database_unreachable"
    CANNOT_SIGN_DATABASE_DOWN = "cannot_sign_database_down"
    CANNOT_SIGN = "cannot_sign"


# Which key a message is about, in both languages.
THE_SIGNING_KEY = Text("签名密钥", "the signing key")
THE_CURRENT_SIGNING_KEY = Text("当前签名密钥", "the current signing key")
THE_ROOT_KEY = Text("根密钥", "the root key")
THE_ISSUER = Text("签发服务", "the issuer")

CATALOGUE: dict[Problem, Text] = {
    Problem.UNAUTHORIZED: Text(
        "缺少或未知的 API 密钥。", "Missing or unknown API key: send 'Authorization: Bearer <key>'."
    ),
    Problem.FORBIDDEN: Text("此 API 密钥没有该操作所需的权限。", "This API key lacks the scope this operation needs."),
    Problem.KIOSK_MISMATCH: Text(
        "此 API 密钥只能上传与其同名终端的扫码记录：kiosk_id 必须与密钥名称一致。",
        "This API key uploads scan logs only for the kiosk it is named after: kiosk_id must equal the key's name.",
    ),
    Problem.RATE_LIMITED: Text("此 API 密钥请求过多，请稍后重试。", "Too many requests for this API key: retry later."),
    Problem.INVALID_INPUT: Text("请求无效，详见 detail。", "The request is invalid: see detail."),
    Problem.NOT_FOUND: Text("没有该对象、纸质码或列表。", "No such subject, paper code or list."),
    Problem.DELTA_UNAVAILABLE: Text(
        "没有这两个版本之间的增量（已超出保留期，或完整列表更小）：请下载完整状态列表。",
        "No delta between these versions (past the window kept, or the full list is smaller): fetch the full"
        " status list.",
    ),
    Problem.CONFLICT: Text("请求与当前状态冲突。", "The request contradicts the current state."),
    Problem.ALREADY_ENROLLED: Text(
        "该证件号码已登记，请使用已有的登记记录，勿重复登记。",
        "This ID number is already enrolled: use the existing subject instead of enrolling again.",
    ),
    Problem.DEVICE_LIMIT: Text(
        "此人已登记的设备数已达上限，请先注销丢失或不再使用的手机。",
        "This person has as many active devices as allowed: revoke a lost or old phone first.",
    ),
    Problem.DEVICE_REVOKED: Text(
        "此手机密钥已被注销，请在手机上生成新的密钥后重新登记。",
        "This phone's key was revoked: make a new key pair on the phone and register it.",
    ),
    Problem.STATUS_EXPIRED: Text(
        "此人的状态已失效，请先重新设置。", "The person's status has lapsed: set it again first."
    ),
    Problem.BODY_TOO_LARGE: Text("请求体过大。", "Request body is too large."),
    Problem.NOT_ACCEPTABLE: Text("请求的格式不受支持。", "Ask for application/json, image/png or image/svg+xml."),
    Problem.UNAVAILABLE: Text("签发服务暂时无法签名，请查看日志。", "The issuer cannot sign right now: see its log."),
    Problem.DATABASE_UNAVAILABLE: Text(
        "数据库暂时不可用，本次请求未作任何更改，请稍后重试。",
        "The database is unavailable: nothing was changed. Retry shortly.",
    ),
    Problem.BATCH_REFUSED: Text(
        "批次中有变更找不到对应人员，整批均未执行（见 detail.failed）。",
        "Some changes name no enrolled person: none of the batch was applied (see detail.failed).",
    ),
    Problem.INTERNAL: Text("内部错误，请查看服务器日志。", "Internal error: see the server log."),
    # {where} is a path, {what} one of the THE_* texts, {error} a detail from the system
    Problem.NOT_INITIALISED: Text(
        f"{{where}}尚未初始化，没有可用的签名密钥：请先运行 `{INIT}`",
        f"{{where}} has not been initialised and has no signing key: run `{INIT}` first",
    ),
    Problem.KEY_FILE_MISSING: Text(
        f"{{what}}文件 {{where}} 不存在：请从备份恢复该文件；若是新目录，请先运行 `{INIT}`",
        f"{{what}} file {{where}} is missing: restore it from your backup, or run `{INIT}` in a new folder",
    ),
    Problem.KEY_FILE_UNREADABLE: Text(
        "无法读取{what}文件 {where}（{error}）：请检查该文件及其权限",
        "cannot read {what} file {where} ({error}): check the file and its permissions",
    ),
    Problem.KEY_FILE_DAMAGED: Text(
        "{what}文件 {where} 不是本服务可用的私钥（{error}）",
        "{what} file {where} is not a private key this issuer can use ({error})",
    ),
    Problem.PASSPHRASE_MISSING: Text(
        f"{{what}}文件 {{where}} 已加密，但未设置环境变量 {PASSPHRASE_ENV}：请将其设为该密钥的口令",
        f"{{what}} file {{where}} is encrypted and {PASSPHRASE_ENV} is not set: set it to the key's passphrase",
    ),
    Problem.PASSPHRASE_WRONG: Text(
        f"环境变量 {PASSPHRASE_ENV} 中的口令打不开{{what}}文件 {{where}}：口令错误",
        f"the passphrase in {PASSPHRASE_ENV} does not open {{what}} file {{where}}: it is the wrong passphrase",
    ),
    Problem.KEY_NOT_ENCRYPTED: Text(
        f"{{what}}文件 {{where}} 未加密，却设置了环境变量 {PASSPHRASE_ENV}：请取消该变量，或换用加密的密钥",
        f"{{what}} file {{where}} is not encrypted but {PASSPHRASE_ENV} is set: unset it, or use an encrypted key",
    ),
    Problem.KEYS_ENCRYPTED: Text(
        f"{{folder}} 中的私钥已加密：请将环境变量 {PASSPHRASE_ENV} 设为其口令（不会在加密的密钥旁写入未加密的私钥）",
        f"the private keys in {{folder}} are encrypted: set {PASSPHRASE_ENV} to their passphrase"
        " (no plaintext private key is written beside them)",
    ),
    # {where} is the key's pkcs11: URI without its query, {what} one of the THE_* texts
    Problem.TOKEN_MODULE_MISSING: Text(
        f"无法加载 PKCS#11 模块 {{where}}（{{error}}）：请安装该模块，或将环境变量 {MODULE_ENV} 设为其路径",
        f"cannot load the PKCS#11 module {{where}} ({{error}}): install it, or set {MODULE_ENV} to its path",
    ),
    Problem.TOKEN_MISSING: Text(
        "{what}所在的令牌 {where} 不在（已拔出、断开或未初始化）：请接回令牌，服务会自行恢复",
        "the token of {what} {where} is not there (removed, disconnected or not initialised):"
        " reconnect it; the issuer recovers by itself",
    ),
    Problem.TOKEN_KEY_MISSING: Text(
        "令牌中找不到{what} {where}：请检查 URI 中的 object 或 id",
        "{what} {where} is not in the token: check the URI's object or id",
    ),
    Problem.TOKEN_KEY_UNUSABLE: Text(
        "令牌中的{what} {where} 不能用于签名（{error}）",
        "{what} {where} in the token cannot sign for this issuer ({error})",
    ),
    Problem.TOKEN_KEY_EXISTS: Text(
        "令牌中已有对象 {where}：请换一个 object 名称（不会覆盖已有密钥）",
        "the token already holds {where}: choose another object label (no key is overwritten)",
    ),
    Problem.TOKEN_FAILED: Text(
        "{what}所在的令牌 {where} 出错（{error}）：请检查令牌或 HSM",
        "the token of {what} {where} failed ({error}): check the token or HSM",
    ),
    Problem.PIN_MISSING: Text(
        f"{{what}} {{where}} 在令牌中，但没有 PIN：请设置环境变量 {PIN_ENV}，或在 URI 中用 pin-source 指向 PIN 文件"
        "（{error}）",
        f"{{what}} {{where}} is in a token and no PIN is given: set {PIN_ENV}, or name a PIN file with pin-source"
        " in the URI ({error})",
    ),
    Problem.PIN_WRONG: Text(
        "PIN 打不开{what}所在的令牌 {where}：PIN 错误；在 PIN 改变之前不会再试（多次错误会锁定令牌）",
        "the PIN does not open the token of {what} {where}: it is wrong; it is not tried again until it changes"
        " (tokens lock after a few wrong PINs)",
    ),
    Problem.PIN_LOCKED: Text(
        "{what}所在的令牌 {where} 的 PIN 已锁定或过期：请由令牌的安全管理员解锁",
        "the PIN of the token of {what} {where} is locked or expired: its security officer must unlock it",
    ),
    Problem.TOKEN_URI_INVALID: Text(
        "{uri} 不是可用的 pkcs11: URI（RFC 7512）：{why}",
        "{uri} is not a usable pkcs11: URI (RFC 7512): {why}",
    ),
    Problem.TOKEN_KEY_NOT_ROTATED: Text(
        "当前签名密钥在令牌中：请用 --signing-key 指定新的令牌密钥（不会改用文件密钥）",
        "the current signing key is in a token: name the new token key with --signing-key"
        " (it is not replaced by a key file)",
    ),
    Problem.NO_TRUST_LIST: Text(
        "没有信任列表：请用离线根密钥签署一份", "no trust list: sign one with the offline root key"
    ),
    Problem.DATA_KEY_NOT_OPENED: Text(
        "没有数据密钥，无法读写姓名和身份证号（{why}）",
        "no data key: names and ID numbers cannot be read or written ({why})",
    ),
    Problem.DATA_KEY_MISSING: Text(
        "{path} 处没有数据密钥：没有它就无法读取姓名和身份证号",
        "no data key at {path}: names and ID numbers cannot be opened without it",
    ),
    Problem.BATCH_START_OUT_OF_RANGE: Text(
        "批次起点 {start} 不在当前时段到一天之后之间（现在是 {now}）",
        "the batch start {start} is not between the current slot and a day from now ({now})",
    ),
    Problem.STATUS_ENDS_IN_SLOT: Text(
        "{subject} 的状态将于 {until} 失效，早于本时段结束：手机凭证无法签发，请联网使用动态码或重新设置状态",
        "the status of {subject} ends at {until}, before this slot does: no phone credential can be issued; use"
        " online codes, or set the status again",
    ),
    Problem.TRACE_REASON_MISSING: Text(
        "追溯必须说明理由（1 至 {most} 个字符），理由会写入审计日志",
        "a trace needs a reason (1 to {most} characters); it is written to the audit log",
    ),
    Problem.TRACE_TOO_MANY: Text(
        "一次最多追溯 {most} 个假名，收到 {count} 个", "at most {most} pseudonyms per trace, got {count}"
    ),
    Problem.PSEUDONYM_MALFORMED: Text(
        "{pseudonym!r} 不是扫码记录中的假名（32 位十六进制）",
        "{pseudonym!r} is not a pseudonym from a scan log (32 hex digits)",
    ),
    Problem.PSEUDONYM_KEY_MISSING: Text(
        "{path} 处没有假名密钥：没有它，扫码记录中的假名无法对应到任何人",
        "no pseudonym key at {path}: without it no pseudonym in a scan log resolves to a person",
    ),
    Problem.DATA_KEY_UNREADABLE: Text("无法读取 {path}：{why}", "cannot read {path}: {why}"),
    Problem.DATA_KEY_DAMAGED: Text("{path} 已损坏", "{path} is damaged"),
    Problem.DATA_KEY_PASSPHRASE_MISSING: Text(
        f"{{path}} 已加密，但未设置环境变量 {PASSPHRASE_ENV}：请将其设为密钥口令",
        f"{{path}} is encrypted and {PASSPHRASE_ENV} is not set: set it to the keys' passphrase",
    ),
    Problem.DATA_KEY_PASSPHRASE_WRONG: Text(
        f"环境变量 {PASSPHRASE_ENV} 中的口令打不开 {{path}}：口令错误",
        f"the passphrase in {PASSPHRASE_ENV} does not open {{path}}: wrong passphrase",
    ),
    Problem.NOT_SEALED: Text("{subject} 的 {column} 不是加密值", "{column} of {subject} is not a sealed value"),
    Problem.SEALED_WITH_UNKNOWN_KEY: Text(
        "{subject} 的 {column} 由数据密钥 {number} 加密，而 {file} 中没有该密钥",
        "{column} of {subject} is sealed with data key {number}, which {file} does not hold",
    ),
    Problem.SEAL_DOES_NOT_OPEN: Text(
        "{subject} 的 {column} 无法解密：已损坏，或从别的记录移来",
        "{column} of {subject} does not open: damaged, or moved from another row",
    ),
    Problem.SETTINGS_INVALID: Text("{zh}", "{en}"),  # pydantic's findings, worded in settings.py
    Problem.SETTINGS_FILE_MISSING: Text("找不到设置文件 {path}", "settings file {path} not found"),
    Problem.SETTINGS_FILE_UNREADABLE: Text(
        "无法读取设置文件 {path}（{why}）", "cannot read settings file {path} ({why})"
    ),
    Problem.SETTINGS_FILE_NOT_TOML: Text(
        "设置文件 {path} {at}不是有效的 TOML：{message}", "settings file {path} is not valid TOML: {message}"
    ),
    Problem.IDENTITY_FILE_DAMAGED: Text('{path} 已损坏：应为 {{"issuer_id": "…"}}', "{path} is damaged"),
    Problem.FOLDER_OF_ANOTHER_ISSUER: Text(
        "此文件夹属于签发方 {kept}（见 {path}），而设置给出的是 {given}",
        "this folder belongs to issuer {kept} (see {path}), but the settings say {given}",
    ),
    Problem.NO_SUBJECT: Text("没有对象 {subject}", "no subject {subject}"),
    Problem.NO_OFFLINE_CODE: Text("没有纸质码 {index}", "no offline code {index}"),
    Problem.NO_DEVICE_CREDENTIAL: Text("没有设备凭证 {index}", "no device credential {index}"),
    Problem.NO_API_KEY: Text("没有名为 {name!r} 的 API 密钥", "no API key named {name!r}"),
    Problem.API_KEY_EXISTS: Text("已有名为 {name!r} 的 API 密钥", "an API key named {name!r} exists"),
    Problem.UNKNOWN_SCOPES: Text(
        "权限须为 {scopes} 之一或其组合；收到的是 {text!r}", "scopes must be among {scopes}; got {text!r}"
    ),
    Problem.VALID_UNTIL_PAST: Text("valid_until 须晚于当前时间", "valid_until must be in the future"),
    Problem.VALID_UNTIL_PAST_IN_BATCH: Text(
        "valid_until 须晚于当前时间（第 {changes} 项）", "valid_until must be in the future (changes {changes})"
    ),
    Problem.PAPER_CODE_NOT_GREEN: Text(
        "{subject} 当前不是有效的绿码状态；纸质码只发给绿码人员",
        "{subject} has no current green status; paper codes are for green people",
    ),
    Problem.OFFLINE_CODE_REVOKED: Text(
        "纸质码 {index} 已吊销，吊销不可撤回", "offline code {index} is revoked; revocation is final"
    ),
    Problem.NOT_A_SUBJECT_ID: Text(
        "{path} 第 {line} 行：{text!r} 不是对象编号（16 位十六进制数字）",
        "{path}:{line}: {text!r} is not a subject id (16 hex digits)",
    ),
    Problem.TOO_MANY_SUBJECTS: Text(
        "{path}：对象超过 {limit} 个，请拆分该文件", "{path}: more than {limit} subjects; split the file"
    ),
    Problem.CSV_HEADER: Text(
        "{path}：第一行须写明列名：status，以及 subject 或 id_number（可选 reason、valid_until）",
        "{path}: the first line must name the columns: status, and subject or id_number"
        " (optionally reason, valid_until)",
    ),
    Problem.CSV_UNREADABLE: Text(
        "{path}：第 {line} 行无法读取：{error}", "{path}: line {line} cannot be read: {error}"
    ),
    Problem.CSV_NOT_UTF8: Text(
        "{path}：第 {line} 行（文件第 {offset} 字节处）不是有效的 UTF-8，未做任何更改：请将文件另存为 UTF-8 后重新导入",
        "{path}: line {line} (byte offset {offset} in the file) is not valid UTF-8; nothing was changed:"
        " save the file as UTF-8 and import it again",
    ),
    Problem.KEY_ROTATED_MEANWHILE: Text(
        "签名密钥 {kid} 已不是当前密钥：另一次轮换已先完成",
        "signing key {kid} is no longer current: another rotation came first",
    ),
    Problem.LIST_VERSION_NOT_ABOVE: Text(
        "{name} 的版本 {version} 不高于已有的 {held}", "{name} version {version} is not above {held}"
    ),
    Problem.TRUST_LIST_VERSION_NOT_ABOVE: Text(
        "版本 {version} 不高于已发布的版本 {held}", "version {version} is not above the published {held}"
    ),
    Problem.TRUST_LIST_LACKS_CURRENT_KEY: Text(
        "该列表不包含当前签名密钥 {kid}", "the list does not include the current signing key {kid}"
    ),
    Problem.OWN_ROOT_EXISTS: Text(
        "{path} 已存在：此签发方有自己的开发根密钥", "{path} exists: this issuer has its own development root"
    ),
    Problem.ANOTHER_ROOT_PINNED: Text("{path} 固定的是另一个根密钥", "{path} pins another root"),
    Problem.REQUEST_KID_MISMATCH: Text(
        "条目 {kid}：其公钥的 kid 是 {actual}", "entry {kid}: the public key's kid is {actual}"
    ),
    Problem.REQUEST_TOO_LARGE: Text("{path} 比任何信任列表请求都大", "{path} is larger than any trust-list request"),
    Problem.NOT_A_REQUEST: Text("{path} 不是信任列表请求：{error}", "{path} is not a trust-list request: {error}"),
    Problem.REQUEST_NOT_ONE_ISSUER: Text(
        "{path}：一份请求只能列出一个签发方的密钥（此处为 {issuers}）",
        "{path}: a request lists the keys of exactly one issuer (found {issuers})",
    ),
    Problem.REQUEST_ALTERED: Text(
        "{path} 在签发方生成后被改动过（其证明无法用请求中的密钥验证）：请该地区重新运行 `trust-list request`",
        "{path} was changed after its issuer made it (its proof does not verify with the request's own keys):"
        " ask that region for a new `trust-list request`",
    ),
    Problem.REQUEST_REPEATS_ISSUER: Text(
        "{path} 属于签发方 {issuer}，而 {other} 已含该签发方：每个地区只能有一份请求",
        "{path} is for issuer {issuer}, already present from {other}: one request per region",
    ),
    Problem.REQUEST_REPEATS_KEY: Text("{path} 重复了另一份请求中的密钥", "{path} repeats a key of another request"),
    Problem.STATUS_URI_NOT_ABSOLUTE: Text(
        "签发方 {issuer}：状态列表地址 {uri!r} 不是完整网址；请在该签发方设置 public_url"
        "（SUISHENMA_ISSUER_PUBLIC_URL）后重新生成请求",
        "issuer {issuer}: status list URI {uri!r} is not absolute; set public_url (SUISHENMA_ISSUER_PUBLIC_URL) on"
        " that issuer and make its request again",
    ),
    Problem.STATUS_URI_MISMATCH: Text(
        "该列表称签发方 {issuer} 的状态列表位于 {uri!r}，而本签发方发布于 {ours}：请检查 public_url 并重新生成请求",
        "the list says issuer {issuer} publishes its status list at {uri!r}, but this issuer publishes it at"
        " {ours}: check public_url and make a new request",
    ),
    Problem.TRUST_LIST_REQUEST_STALE: Text(
        "未签署：{path} 请求版本 {version}，而 --current 给出的现行信任列表已是版本 {current}。这份请求生成于该地区导入"
        "现行列表之前（旧请求，或被重放）：请该地区先导入现行列表，再用 trust-list request 生成新请求",
        "not signed: {path} asks for version {version}, but the trust list in force (--current) is already version"
        " {current}. The request was made before that region imported the list in force (an old or replayed"
        " request): have the region import the list in force, then make a new request with trust-list request",
    ),
    Problem.TRUST_LIST_CURRENT_OUTDATED: Text(
        "未签署：{path} 请求版本 {version}，说明该地区已持有比 --current（版本 {current}）更新的列表。"
        "请用 --current 给出根密钥最近签署的信任列表",
        "not signed: {path} asks for version {version}, so that region holds a list newer than --current"
        " (version {current}). Give the trust list this root signed last with --current",
    ),
    Problem.TRUST_LIST_CURRENT_EXPIRED: Text(
        "--current 给出的信任列表（版本 {version}）已于 {expired} 过期，不能用来为新密钥作保。"
        "请通过另一渠道与各地区核对密钥，再用 --expect 地区=KID 确认",
        "the trust list given with --current (version {version}) expired at {expired}, so it cannot vouch for"
        " new keys. Check the keys with each region by another channel and confirm them with --expect REGION=KID",
    ),
    Problem.TRUST_LIST_KEY_UNCONFIRMED: Text(
        "未签署：新密钥 {keys} 未经确认（现行信任列表没有为该地区列出它，也没有该地区已受信任的密钥为它签名）。"
        "请通过另一渠道（电话、当面）与该地区核对这些 kid，无误后加上 --expect {keys} 重新运行；"
        "若是该地区轮换了密钥，请用 --current 给出现行的信任列表，由其原有密钥为新密钥作保",
        "not signed: new key {keys} is not confirmed (the trust list in force does not list it for that region,"
        " and no key it trusts for that region signed for it). Check these kids with the region by another"
        " channel (phone, in person), then run again with --expect {keys}; after a region's key rotation, give"
        " the trust list in force with --current so that its key already trusted vouches for the new one",
    ),
    Problem.EXPECTED_KEY_NOT_REQUESTED: Text(
        "未签署：--expect 给出了 {issuer}={kid}，但没有哪份请求列出该地区的这个密钥："
        "所签的与该地区告知的不符，请向其核实",
        "not signed: --expect names {issuer}={kid}, but no request lists that key for that region: what would be"
        " signed is not what the region told you; check with the region",
    ),
    Problem.CHECKPOINT_DOES_NOT_VERIFY: Text(
        "{path} 校验失败（{reason}：{why}）；已保留作为证据：请运行 `suishenma-issuer audit verify`，查明原因后再移走",
        "{path} does not verify ({reason}: {why}); it is kept as evidence: run `suishenma-issuer audit verify`"
        " and move it away once explained",
    ),
    Problem.CHECKPOINT_CONTRADICTED: Text("数据库与已签署的审计检查点不符：{problems}", "{problems}"),
    Problem.COPY_TARGET_NOT_EMPTY: Text(
        "目标数据库不是空的（{tables} 中已有数据）：只能复制到新的数据库",
        "the target database is not empty ({tables} hold rows): copy only into a new database",
    ),
    Problem.COPY_INCOMPLETE: Text(
        "{table}：复制了 {copied} 行，应为 {expected} 行", "{table}: {copied} rows copied of {expected}"
    ),
    Problem.COPY_CHAIN_BROKEN: Text(
        "复制后的审计链校验失败：{problems}", "the copied audit chain does not verify: {problems}"
    ),
    Problem.BACKUP_TARGET_NOT_EMPTY: Text(
        "备份目录 {path} 不是空的：请指定一个新目录", "the backup folder {path} is not empty: give a new folder"
    ),
    Problem.BACKUP_UNREADABLE: Text(
        "{path} 不是可用的备份（{detail}）", "{path} is not a backup this version can read ({detail})"
    ),
    Problem.BACKUP_OTHER_BACKEND: Text(
        "这是 {backend} 的备份：请恢复到同一种数据库（或先恢复，再用 db copy 迁移）",
        "this is a backup of a {backend} issuer: restore it to the same kind of database (then move it with db copy)",
    ),
    Problem.BACKUP_FILE_MISSING: Text(
        "缺少 {path}（{why}）：请先把它从保管处放回原位，再恢复",
        "{path} is missing ({why}): put it back from where it is kept, then restore",
    ),
    Problem.BACKUP_FILE_DIFFERS: Text(
        "{path} 与备份时的文件不同（{why}）：请放回备份时的那一份",
        "{path} is not the file that was backed up ({why}): put back the one from the time of the backup",
    ),
    Problem.BACKUP_TOOL_FAILED: Text("{tool} 失败：{detail}", "{tool} failed: {detail}"),
    Problem.RESTORE_TARGET_NOT_EMPTY: Text(
        "恢复目标 {target} 已有数据：只能恢复到新的签发服务目录或空数据库",
        "{target} already holds data: restore only into a new issuer folder or an empty database",
    ),
    Problem.ID_NUMBER_ENROLLED: Text("该证件号码已登记", "this ID number is already enrolled"),
    Problem.TOO_MANY_DEVICES: Text(
        "{subject} 已有 {active} 台在用设备；请先吊销其中一台",
        "{subject} has {active} active devices; revoke one first",
    ),
    Problem.DEVICE_KEY_REVOKED: Text(
        "此设备已被吊销；请在手机上生成新的密钥对", "this device was revoked; make a new key pair on the phone"
    ),
    Problem.STATUS_LAPSED: Text(
        "{subject} 的状态已于 {until} 失效，请重新设置", "the status of {subject} expired at {until}; set it again"
    ),
    Problem.DATABASE_UNREACHABLE: Text("数据库暂时不可用（{why}），请稍后重试", "{why}"),
    Problem.CANNOT_SIGN_DATABASE_DOWN: Text(
        "数据库暂时不可用：无法签发任何码，恢复后会自动重连",
        "the database is unavailable: no code can be issued until it is back (reconnects by itself)",
    ),
    Problem.CANNOT_SIGN: Text("签发服务无法签名，原因见其日志", "the issuer cannot sign: see its log"),
}


class IssuerError(Exception):
    """Root of every error the issuer raises on purpose.

    ``problem`` is the reason code; ``message_zh``/``message_en`` its catalogue text with ``fields`` filled in;
    ``detail`` anything machine-readable an API answer carries beside it.
    """

    def __init__(self, problem: Problem, detail: object = None, **fields: object) -> None:
        self.problem = problem
        self.detail = detail
        text = CATALOGUE[problem].format(**fields)
        self.message_zh, self.message_en = text
        super().__init__(self.message_en)

    def __str__(self) -> str:
        return self.message_en


class CallerError(IssuerError):
    """The request or a command's input is wrong; the caller can fix it and try again."""


class InputError(CallerError):
    """A file, argument or body given to the issuer is not what it should be."""


class NotFound(CallerError):
    """The subject, paper code, device credential or API key the caller names does not exist."""


class Conflict(IssuerError):
    """The request contradicts the stored state (e.g. reinstating a revoked paper code)."""


class AlreadyEnrolled(Conflict):
    """The ID number belongs to a person enrolled before; the message never names the number or subject."""

    def __init__(self) -> None:
        super().__init__(Problem.ID_NUMBER_ENROLLED)


class DeviceLimit(Conflict):
    """The person has as many active devices as allowed: one must be revoked first."""

    def __init__(self, subject: str, active: int) -> None:
        super().__init__(Problem.TOO_MANY_DEVICES, subject=subject, active=active)


class DeviceRevoked(Conflict):
    """This device key was revoked (a lost phone): it never gets a credential again."""

    def __init__(self) -> None:
        super().__init__(Problem.DEVICE_KEY_REVOKED)


class StatusExpired(Conflict):
    """The person's status has lapsed (``valid_until`` passed): it must be set again before minting."""

    def __init__(self, subject: str, until: int) -> None:
        super().__init__(Problem.STATUS_LAPSED, subject=subject, until=until)


class ConfigError(IssuerError):
    """This issuer's folder, settings or key files cannot be used as they are; the operator must act."""


class SettingsError(ConfigError):
    """Settings that cannot be used; ``lines`` holds one ``Text`` per problem."""

    def __init__(self, lines: list[Text]) -> None:
        self.lines = lines
        super().__init__(Problem.SETTINGS_INVALID, zh="；".join(t.zh for t in lines), en="; ".join(t.en for t in lines))


class NotInitialised(ConfigError):
    """No database, or no signing key in it: ``suishenma-issuer init`` has not been run in this folder.

    ``public_zh``/``public_en`` say it without the folder (for ``/healthz``, which anyone may read).
    """

    def __init__(self, where: Path | None = None) -> None:
        super().__init__(Problem.NOT_INITIALISED, where=str(where) if where else THE_ISSUER)
        self.public_zh, self.public_en = CATALOGUE[Problem.NOT_INITIALISED].format(where=THE_ISSUER)


class NoSigningKey(NotInitialised):
    """No signing key recorded: run ``suishenma-issuer init``."""


class KeyUnusable(ConfigError):
    """A private key file the issuer needs cannot be used; ``problem`` says why, both messages say what to do.

    ``message_zh``/``message_en`` name the full path (for the terminal and the server log);
    ``public_zh``/``public_en`` only the file name (for ``/healthz``, which anyone may read).
    """

    def __init__(self, problem: Problem, path: Path, what: Text, error: str = "") -> None:
        super().__init__(problem, what=what, where=str(path), error=error)
        self.path, self.what = path, what
        self.public_zh, self.public_en = CATALOGUE[problem].format(what=what, where=path.name, error=error)


class KeysEncrypted(ConfigError):
    """The keys in a folder are encrypted and no passphrase is set: a new key would be the only plaintext one."""

    def __init__(self, folder: Path) -> None:
        super().__init__(Problem.KEYS_ENCRYPTED, folder=folder)


class SealError(ConfigError):
    """A sealed value does not open (wrong key, moved or damaged), or the data-key file is unusable."""


class NoTrustList(ConfigError):
    """No trust list has been signed for this issuer yet."""

    def __init__(self) -> None:
        super().__init__(Problem.NO_TRUST_LIST)


class CheckpointRefused(ConfigError):
    """The held audit checkpoint is unreadable or the database contradicts it: no newer one is written."""


class StorageUnavailable(IssuerError):
    """The database cannot be reached or did not answer in time; nothing was changed."""

    def __init__(self, why: str) -> None:
        super().__init__(Problem.DATABASE_UNREACHABLE, why=why)


def bilingual(exc: BaseException) -> Text:
    """The words for any error a command reports: the issuer's own, the core's, or the system's.

    The core's errors carry a Chinese summary and an English detail, which is appended to the Chinese
    (file names, ids and numbers read the same in both).
    """
    if isinstance(exc, IssuerError):
        return Text(exc.message_zh, exc.message_en)
    en = str(getattr(exc, "message_en", "") or exc)
    zh = str(getattr(exc, "message_zh", "") or "")
    detail = str(getattr(exc, "detail", "") or "")
    if isinstance(exc, OSError) and exc.filename and not zh:
        why = exc.strerror or type(exc).__name__
        return Text(f"无法使用文件 {exc.filename}（{why}）", f"cannot use {exc.filename} ({why})")
    if detail and zh and detail not in zh:
        return Text(f"{zh.rstrip('。')}：{detail}", en)
    return Text(zh or f"操作失败：{en}", en)
