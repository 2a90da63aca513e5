"""Issuer settings: defaults, then an optional TOML file, then ``SUISHENMA_ISSUER_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

CONFIG_ENV = "SUISHENMA_ISSUER_CONFIG"
DAY = 86400


class Settings(BaseSettings):
    """Everything an operator can set. Paths are relative to ``base_dir`` unless absolute."""

    model_config = SettingsConfigDict(env_prefix="SUISHENMA_ISSUER_", extra="forbid")

    base_dir: Path = Field(default=Path("."), description="Folder holding var/ and keys/")
    database: Path = Field(default=Path("var/issuer.db"), description="SQLite database file")
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
    dynamic_ttl: int = Field(default=60, ge=10, le=3600, description="Seconds a phone's code stays valid")
    offline_ttl: int = Field(default=365 * DAY, ge=DAY, description="Seconds a printed code stays valid")
    device_ttl: int = Field(default=DAY, ge=600, le=DAY, description="Seconds a device credential stays valid")
    max_devices: int = Field(default=3, ge=1, le=20, description="Active devices (phones) a person may register")
    trust_list_ttl: int = Field(default=30 * DAY, ge=3600, description="Validity of a trust list re-signed here")
    status_list_valid_for: int = Field(default=7 * DAY, ge=600, description="Validity of a signed status list")
    status_list_ttl: int = Field(default=300, ge=10, description="Seconds after which verifiers should refetch")
    status_list_capacity: int = Field(default=1 << 20, ge=1024, description="Initial status-list size (grows x2)")
    rate_per_s: float = Field(
        default=1000.0, gt=0, allow_inf_nan=False, description="Default per-key request rate for new API keys"
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Largest request body accepted")
    list_cache_s: int = Field(default=60, ge=0, description="Cache-Control max-age of published lists")
    demo_wallet: bool = Field(default=False, description="Serve /demo/wallet pages that mint without a key")
    public_url: str = Field(default="", description="Base URL published in status_uri (a path when empty)")

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
        pydantic.ValidationError: an invalid value, with the field named.
        FileNotFoundError: ``config`` does not exist.
    """
    if config is None and os.environ.get(CONFIG_ENV):
        config = Path(os.environ[CONFIG_ENV])
    given = {k: v for k, v in overrides.items() if v is not None}
    if config is None:
        return Settings(**given)
    if not config.is_file():
        raise FileNotFoundError(f"config file not found: {config}")

    class FromFile(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config})

    return FromFile(**given)
