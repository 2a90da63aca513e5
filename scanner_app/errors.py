"""The kiosk's errors for people, Chinese first, then English: each is a ``cliutil.CliError`` (so the
command line prints it with ``cliutil.print_exception``) and also the built-in error callers already
catch (a bad configuration is a ``ValueError``, a missing video a ``FileNotFoundError``)."""

from __future__ import annotations

from suishenma.cliutil import CliError
from suishenma.texts import Text

NO_STATE = Text(
    "{state} 中没有核验器状态：请先运行 suishenma-verifier init",
    "no verifier state in {state}: run suishenma-verifier init first",
)
STATE_REQUIRED = Text("需要 --state（或配置文件中的 state）", "--state (or state in the config file) is required")


class ConfigError(CliError, ValueError):
    """The configuration cannot work: unreadable or invalid TOML, an unknown option, a wrong type."""


class SourceMissing(CliError, FileNotFoundError):
    """The video file or image folder named on the command line cannot be opened."""

    def __str__(self) -> str:
        return self.en


class ReaderUnavailable(CliError, OSError):
    """The keyboard-wedge reader cannot be used at all (python-evdev missing): retried like an unplugged one."""

    def __str__(self) -> str:
        return self.en
