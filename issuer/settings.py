"""Issuer settings: defaults, then an optional TOML file, then ``SUISHENMA_ISSUER_*`` environment variables."""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from issuer.errors import CATALOGUE, Problem, SettingsError
from suishenma.texts import Text

ENV_PREFIX = "SUISHENMA_ISSUER_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
DAY = 86400


class Settings(BaseSettings):
    """Everything an operator can set. Paths are relative to ``base_dir`` unless absolute."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    base_dir: Path = Field(default=Path("."), description="Folder holding var/ and keys/")
    database: Path = Field(default=Path("var/issuer.db"), description="SQLite database file")
    database_url: str = Field(
        default="", description="PostgreSQL URL (postgresql://user@host/db); empty: the SQLite file above"
    )
    mint_count_flush_s: float = Field(
        default=1.0, gt=0, le=60, allow_inf_nan=False, description="Seconds between writes of the mint counters"
    )
    audit_checkpoint: Path = Field(
        default=Path("var/audit-checkpoint.cwt"), description="Signed checkpoint of the audit log's head"
    )
    audit_checkpoint_s: float = Field(
        default=5.0, gt=0, le=3600, allow_inf_nan=False, description="Seconds between checkpoints while serving"
    )
    keys_dir: Path = Field(default=Path("keys"), description="Signing keys and the development root key")
    issuer_id: str = Field(default="SH", min_length=1, max_length=8, description="Issuer (region) id in codes")
    sqlite_synchronous: str = Field(
        default="NORMAL", pattern="^(NORMAL|FULL)$", description="NORMAL survives a crash; FULL also power loss"
    )
    offline_ttl: int = Field(default=365 * DAY, ge=DAY, description="Seconds a printed code stays valid")
    device_batch: int = Field(
        default=6,
        ge=4,
        le=48,
        description="Credentials in a phone's batch for a day, each valid for its own slot of 24 h / K (K divides"
        " 86,400); each adds a status-list entry",
    )
    previous_forms_until: int = Field(
        default=0,
        ge=0,
        description="Last instant (POSIX seconds) verifiers accept this issuer's codes of the previous forms, which"
        " carry a fixed identifier; 0: not stated, they are accepted",
    )
    max_devices: int = Field(default=3, ge=1, le=20, description="Active devices (phones) a person may register")
    trust_list_ttl: int = Field(default=30 * DAY, ge=3600, description="Validity of a trust list re-signed here")
    status_list_valid_for: int = Field(default=7 * DAY, ge=600, description="Validity of a signed status list")
    status_list_ttl: int = Field(default=300, ge=10, description="Seconds after which verifiers should refetch")
    status_list_capacity: int = Field(default=1 << 20, ge=1024, description="Initial status-list size (grows x2)")
    timestamp_interval: int = Field(
        default=60, ge=1, description="Seconds between re-signings of the status-list timestamp (sooner on a change)"
    )
    timestamp_valid_for: int = Field(
        default=600, ge=60, description="Validity of a signed timestamp: a frozen mirror stops vouching after this"
    )
    delta_window: int = Field(
        default=7 * DAY, ge=3600, description="How long status-list deltas stay available; further behind: full list"
    )
    rate_per_s: float = Field(
        default=1000.0, gt=0, allow_inf_nan=False, description="Default per-key request rate for new API keys"
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Largest request body accepted")
    max_batch_body_bytes: int = Field(
        default=4 << 20, ge=1024, description="Largest body of a batch of status changes (up to 10,000)"
    )
    list_cache_s: int = Field(default=60, ge=0, description="Cache-Control max-age of published lists")
    demo_wallet: bool = Field(default=False, description="Serve /demo/wallet pages that mint without a key")
    public_url: str = Field(default="", description="Base URL published in status_uri (a path when empty)")

    @field_validator("device_batch")
    @classmethod
    def _divides_a_day(cls, k: int) -> int:
        if DAY % k:
            raise ValueError(f"must divide 86400 (4, 5, 6, 8, 9, 10, 12, 15, 16, 18, 20, 24, ...), not {k}")
        return k

    @property
    def slot(self) -> int:
        """Seconds each credential of a phone's batch is valid."""
        return DAY // self.device_batch

    @property
    def status_list_uri(self) -> str:
        """Where verifiers find this issuer's status list (its deltas lie under it, docs/format.md §6, "Deltas")."""
        return f"{self.public_url.rstrip('/')}/v1/status-lists/{self.issuer_id}"

    @property
    def timestamp_uri(self) -> str:
        """Where verifiers find this issuer's signed timestamp."""
        return self.status_list_uri + "/timestamp"

    def path(self, p: Path) -> Path:
        """``p`` resolved against ``base_dir``."""
        return p if p.is_absolute() else self.base_dir / p

    @property
    def db_path(self) -> Path:
        return self.path(self.database)

    @property
    def audit_checkpoint_path(self) -> Path:
        return self.path(self.audit_checkpoint)

    @property
    def keys_path(self) -> Path:
        return self.path(self.keys_dir)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments first, then the environment, then the TOML file named in model_config (if any).
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config`` (TOML) or ``$SUISHENMA_ISSUER_CONFIG``, the environment, then ``overrides``.

    Raises:
        SettingsError: the file is missing, unreadable or not TOML; it or a ``SUISHENMA_ISSUER_*`` variable
            names an option that does not exist (with the nearest one that does); or a value is invalid.
            Each problem is one line in Chinese and one in English, naming where the value came from.
    """
    if config is None and os.environ.get(CONFIG_ENV):
        config = Path(os.environ[CONFIG_ENV])
    given = {k: v for k, v in overrides.items() if v is not None}
    table = _read_toml(config) if config is not None else {}
    problems = [
        _unknown(key, f"设置文件 {config}", f"settings file {config}")
        for key in table
        if key not in Settings.model_fields
    ]
    for var in sorted(os.environ):
        key = var[len(ENV_PREFIX) :].lower()
        if var.upper().startswith(ENV_PREFIX) and var.upper() != CONFIG_ENV and key not in Settings.model_fields:
            problems.append(_unknown(key, f"环境变量 {var}", f"environment variable {var}", prefix=ENV_PREFIX))
    if problems:
        raise SettingsError(problems)
    try:
        if config is None:
            return Settings(**given)

        class FromFile(Settings):
            model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config})

        return FromFile(**given)
    except ValidationError as exc:
        raise SettingsError([_invalid(e, config, table) for e in exc.errors()]) from None


def _read_toml(path: Path) -> dict[str, Any]:
    """Raises: SettingsError: missing, unreadable, or not TOML (with the line and column)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SettingsError([CATALOGUE[Problem.SETTINGS_FILE_MISSING].format(path=path)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise SettingsError([CATALOGUE[Problem.SETTINGS_FILE_UNREADABLE].format(path=path, why=why)]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = message[message.rfind("(at ") + 4 : -1] if message.endswith(")") and "(at " in message else ""
        line = where.replace("line ", "").replace("column ", "").split(", ")
        at_zh = f"第 {line[0]} 行第 {line[1]} 列" if len(line) == 2 else "某处"
        at = Text(at_zh, "")
        raise SettingsError(
            [CATALOGUE[Problem.SETTINGS_FILE_NOT_TOML].format(path=path, at=at, message=message)]
        ) from None


def _unknown(key: str, where_zh: str, where_en: str, prefix: str = "") -> Text:
    near = difflib.get_close_matches(key, list(Settings.model_fields), n=1, cutoff=0.6)
    hint_en = f"; did you mean {prefix}{near[0].upper() if prefix else near[0]}?" if near else ""
    hint_zh = f"；您是否想写 {prefix}{near[0].upper() if prefix else near[0]}？" if near else ""
    name = f"{prefix}{key.upper()}" if prefix else key
    if prefix:
        return Text(f"{where_zh} 不是任何设置项{hint_zh}", f"{where_en} is not a setting{hint_en}")
    return Text(f"{where_zh} 中的 {name} 不是任何设置项{hint_zh}", f"{name} in {where_en} is not a setting{hint_en}")


# pydantic's error types, in Chinese; the English is pydantic's own message.
_ZH: dict[str, str] = {
    "greater_than_equal": "应不小于 {ge}",
    "greater_than": "应大于 {gt}",
    "less_than_equal": "应不大于 {le}",
    "less_than": "应小于 {lt}",
    "string_pattern_mismatch": "应符合格式 {pattern}",
    "string_too_short": "至少应有 {min_length} 个字符",
    "string_too_long": "至多只能有 {max_length} 个字符",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "finite_number": "应为有限的数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文本（在 TOML 中加引号）",
    "path_type": "应为路径（在 TOML 中加引号）",
}


def _invalid(error: Any, config: Path | None, table: dict[str, Any]) -> Text:
    field = str(error["loc"][0]) if error.get("loc") else "?"
    var = ENV_PREFIX + field.upper()
    value = error.get("input")
    if any(k.upper() == var for k in os.environ):
        what_zh = what_en = f"{var}={value}"
        what_zh, what_en = f"环境变量 {what_zh}", f"environment variable {what_en}"
    elif field in table:
        what_zh, what_en = (
            f"设置文件 {config} 中的 {field} = {value!r}",
            f"{field} = {value!r} in settings file {config}",
        )
    else:
        what_zh, what_en = f"命令行参数给出的 {field} = {value!r}", f"{field} = {value!r} from the command line"
    template = _ZH.get(error.get("type", ""))
    why_zh = template.format(**error.get("ctx", {})) if template else f"取值无效（{error.get('msg', '')}）"
    return Text(f"{what_zh} 无效：{why_zh}", f"{what_en} is invalid: {error.get('msg', '')}")
