"""Scanner settings from a TOML file (every option is documented in docs/scanner.example.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class ScannerConfig:
    state: str = ""  # verifier state folder (made with `suishenma-verifier init`)
    camera: int | None = None
    video: str | None = None
    images: str | None = None
    url: str | None = None
    fullscreen: bool = False
    headless: bool = False
    sync_interval_s: float = 120.0
    verdict_hold_s: float = 3.0
    forget_s: float = 3.0
    retry: str = "auto"
    retry_every: int = 4
    max_side: int = 1920
    sound: bool = True
    hook_command: str | None = None
    hook_url: str | None = None
    hook_timeout_s: float = 2.0
    image_repeat: int = 3
    max_fps: float = 30.0
    log_level: str = "INFO"
    metrics_port: int | None = None  # Prometheus GET /metrics on this port; None: not served
    metrics_host: str = "127.0.0.1"


def load_config(path: Path | None, **overrides: Any) -> ScannerConfig:
    """TOML values, then command-line overrides (None means not given).

    Raises:
        ConfigError (a ValueError, its message in both languages): the file cannot be read, invalid TOML,
            an unknown option, or a value of the wrong type.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            why: str = getattr(exc, "strerror", None) or str(exc)
            missing, denied = isinstance(exc, FileNotFoundError), isinstance(exc, PermissionError)
            why_zh = "文件不存在" if missing else "没有读取权限" if denied else why
            raise ConfigError(
                f"无法读取配置文件 {path}（{why_zh}）", f"cannot read the config file {path}: {why}"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"配置文件 {path} 不是有效的 TOML（{exc}）", f"{path}: {exc}") from None
    known = {f.name: f for f in fields(ScannerConfig)}
    unknown = ", ".join(sorted(set(data) - set(known)))
    if unknown:
        raise ConfigError(f"未知的扫码终端选项：{unknown}", f"unknown scanner options: {unknown}")
    data.update({k: v for k, v in overrides.items() if v is not None and v is not False})
    for name, value in data.items():
        default = getattr(ScannerConfig, name)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{name} 须为 true 或 false", f"{name} must be true or false")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)):
            raise ConfigError(f"{name} 须为数字", f"{name} must be a number")
    port = data.get("metrics_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise ConfigError("metrics_port 须为 1 至 65535 的端口号", "metrics_port must be a port number from 1 to 65535")
    cfg = ScannerConfig(**data)
    if cfg.retry not in ("auto", "always", "never"):
        raise ConfigError("retry 须为 auto、always 或 never", "retry must be auto, always or never")
    return cfg
