"""Why the issuer cannot sign, in words an operator can act on, in Chinese and in English.

``/healthz``, ``suishenma-issuer serve`` at start-up and the other commands all name the same causes:
a folder never initialised, a key file that is missing, unreadable or damaged, and a passphrase
(``SUISHENMA_KEY_PASSPHRASE``) that is missing, wrong, or set for a key that is not encrypted.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from suishenma import KeyFileError, Reason
from suishenma.keys import PASSPHRASE_ENV

INIT = "suishenma-issuer init"


class Cause(StrEnum):
    """Stable reason codes: ``/healthz`` answers them as ``reason``; logs and tests name them."""

    NOT_INITIALISED = "not_initialised"
    KEY_FILE_MISSING = "key_file_missing"
    KEY_FILE_UNREADABLE = "key_file_unreadable"
    KEY_FILE_DAMAGED = "key_file_damaged"
    PASSPHRASE_MISSING = "passphrase_missing"
    PASSPHRASE_WRONG = "passphrase_wrong"
    KEY_NOT_ENCRYPTED = "key_not_encrypted"
    DATABASE_UNAVAILABLE = "database_unavailable"  # the database cannot be reached: nothing can be minted
    UNAVAILABLE = "unavailable"  # anything else (e.g. the database cannot be read): the log says what


# Which key a message is about, in both languages.
WHAT: dict[str, str] = {
    "the signing key": "签名密钥",
    "the current signing key": "当前签名密钥",
    "the root key": "根密钥",
}


def _texts(cause: Cause, what: str, where: str, error: str) -> tuple[str, str]:
    """(Chinese, English) for a key file problem; ``where`` is the file as it may be shown here."""
    what_zh = WHAT.get(what, what)
    if cause is Cause.KEY_FILE_MISSING:
        return (
            f"{what_zh}文件 {where} 不存在：请从备份恢复该文件；若是新目录，请先运行 `{INIT}`",
            f"{what} file {where} is missing: restore it from your backup, or run `{INIT}` in a new folder",
        )
    if cause is Cause.KEY_FILE_UNREADABLE:
        return (
            f"无法读取{what_zh}文件 {where}（{error}）：请检查该文件及其权限",
            f"cannot read {what} file {where} ({error}): check the file and its permissions",
        )
    if cause is Cause.PASSPHRASE_MISSING:
        return (
            f"{what_zh}文件 {where} 已加密，但未设置环境变量 {PASSPHRASE_ENV}：请将其设为该密钥的口令",
            f"{what} file {where} is encrypted and {PASSPHRASE_ENV} is not set: set it to the key's passphrase",
        )
    if cause is Cause.PASSPHRASE_WRONG:
        return (
            f"环境变量 {PASSPHRASE_ENV} 中的口令打不开{what_zh}文件 {where}：口令错误",
            f"the passphrase in {PASSPHRASE_ENV} does not open {what} file {where}: it is the wrong passphrase",
        )
    if cause is Cause.KEY_NOT_ENCRYPTED:
        return (
            f"{what_zh}文件 {where} 未加密，却设置了环境变量 {PASSPHRASE_ENV}：请取消该变量，或换用加密的密钥",
            f"{what} file {where} is not encrypted but {PASSPHRASE_ENV} is set: unset it, or use an encrypted key",
        )
    return (
        f"{what_zh}文件 {where} 不是本服务可用的私钥（{error}）",
        f"{what} file {where} is not a private key this issuer can use ({error})",
    )


class KeyUnusable(KeyFileError):
    """A private key file the issuer needs cannot be used; ``cause`` says why, both messages say what to do.

    ``message_zh``/``message_en`` name the full path (for the terminal and the server log);
    ``public_zh``/``public_en`` only the file name (for ``/healthz``, which anyone may read).
    """

    def __init__(self, cause: Cause, path: Path, what: str, error: str = "") -> None:
        self.cause, self.path, self.what = cause, path, what
        zh, en = _texts(cause, what, str(path), error)
        super().__init__(Reason.KEY_FILE, en)
        self.message_zh, self.message_en = zh, en
        self.public_zh, self.public_en = _texts(cause, what, path.name, error)

    def __str__(self) -> str:
        return self.message_en


class NotInitialised(RuntimeError):
    """No database, or no signing key in it: ``suishenma-issuer init`` has not been run in this folder."""

    cause = Cause.NOT_INITIALISED

    def __init__(self, where: Path | None = None) -> None:
        zh_where, en_where = (f"{where} ", f"{where}") if where else ("签发服务", "the issuer")
        self.message_zh = f"{zh_where}尚未初始化，没有可用的签名密钥：请先运行 `{INIT}`"
        self.message_en = f"{en_where} has not been initialised and has no signing key: run `{INIT}` first"
        self.public_zh = f"签发服务尚未初始化，没有可用的签名密钥：请先运行 `{INIT}`"
        self.public_en = f"the issuer has not been initialised and has no signing key: run `{INIT}` first"
        super().__init__(self.message_en)


class InputError(ValueError):
    """A file or argument given to a command is not what it should be; the message says it in both languages."""

    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.message_en, self.message_zh = en, zh


def bilingual(exc: BaseException) -> tuple[str, str]:
    """(Chinese, English) for any error the commands report; the Chinese carries the English's detail.

    Errors raised here carry both; the core's carry a Chinese summary and an English detail, which is
    appended (file names, ids and numbers read the same in both).
    """
    en = str(getattr(exc, "message_en", "") or exc)
    zh = str(getattr(exc, "message_zh", "") or "")
    detail = str(getattr(exc, "detail", "") or "")
    if isinstance(exc, KeyUnusable):
        return zh, en
    if isinstance(exc, OSError) and exc.filename and not zh:
        why = exc.strerror or type(exc).__name__
        return f"无法使用文件 {exc.filename}（{why}）", f"cannot use {exc.filename} ({why})"
    if detail and zh and detail not in zh:
        return f"{zh.rstrip('。')}：{detail}", en
    return (zh or f"操作失败：{en}"), en
