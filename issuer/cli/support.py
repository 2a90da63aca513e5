"""What ``suishenma-issuer`` shares with command-line tools people already know: errors in Chinese and
English, usage errors with exit code 2, JSON for scripts, and quiet exits when ``| head`` stops reading."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NoReturn

from suishenma import cliutil
from suishenma.cliutil import EXIT_PIPE, argparse_zh, print_error, print_warning

__all__ = ["EXIT_PIPE", "Parser", "argparse_zh", "exit_with", "print_error", "print_json", "print_warning"]

# One parser and one message order for every command line of the project (suishenma/cliutil.py).
Parser = cliutil.BilingualParser


def print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def exit_with(main: Callable[[], int]) -> NoReturn:
    """``sys.exit(main())``, but a reader that stops early (``| head``) ends the command quietly with exit
    code 141, without a ``BrokenPipeError`` traceback (``cliutil.run``).

    Raises:
        SystemExit: always.
    """
    cliutil.run(main)
