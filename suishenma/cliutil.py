"""What every command line of the project does alike: ``--version``, codes from an argument, stdin or a
file (codes hold ``$ % *`` and spaces, which shells mangle), messages in Chinese first and then English,
usage errors with exit code 2, and a quiet exit 141 when output goes to a pipe that closes early
(``... | head``)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import NoReturn

from .errors import SuishenmaError, UsageError

MAX_CODE_FILE = 64 * 1024
EXIT_USAGE = 2
# The shell's code for a process ended by SIGPIPE (128 + 13): what `seq 1 1e6 | head -1` leaves in
# PIPESTATUS, so a script can tell "the reader went away" from a failure.
EXIT_PIPE = 141

# argparse's own messages, in Chinese (the English follows on the next line).
_ARGPARSE_ZH: tuple[tuple[str, str], ...] = (
    (r"the following arguments are required: (.*)", r"缺少必需的参数：\1"),
    (r"unrecognized arguments: (.*)", r"无法识别的参数：\1"),
    (r"argument (\S+): invalid choice: (.*) \(choose from (.*)\)", r"参数 \1 的取值 \2 无效，可选：\3"),
    (r"argument (\S+): expected one argument", r"参数 \1 后面需要一个值"),
    (r"argument (\S+): invalid (\S+) value: (.*)", r"参数 \1 的值 \3 无效（应为 \2）"),
    (r"argument (\S+): ambiguous option: (.*)", r"参数 \1 有歧义：\2"),
    (r"argument (\S+): not allowed with argument (\S+)", r"参数 \1 不能与 \2 同时使用"),
)


class CliError(Exception):
    """A command cannot go on, for a reason the user can fix: said in Chinese and in English."""

    def __init__(self, zh: str, en: str, code: int = EXIT_USAGE) -> None:
        super().__init__(en)
        self.zh, self.en, self.code = zh, en, code


def print_error(zh: str, en: str) -> None:
    """One line in Chinese, then the same in English, on standard error."""
    print(f"错误：{zh}", file=sys.stderr)
    print(f"error: {en}", file=sys.stderr)


def print_warning(zh: str, en: str) -> None:
    """One line in Chinese, then the same in English, on standard error."""
    print(f"警告：{zh}", file=sys.stderr)
    print(f"warning: {en}", file=sys.stderr)


def print_exception(exc: SuishenmaError | CliError) -> None:
    """``print_error`` for the project's own errors, which carry both languages."""
    if isinstance(exc, CliError):
        print_error(exc.zh, exc.en)
    else:
        print_error(exc.message_zh, exc.message_en)


def argparse_zh(message: str) -> str:
    """The Chinese for one of argparse's usage messages (a generic line when it is not one we know)."""
    for pattern, template in _ARGPARSE_ZH:
        if re.fullmatch(pattern, message):
            return re.sub(pattern, template, message)
    return f"参数有误：{message}"


class BilingualParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are in both languages, Chinese first (exit code 2, as
    argparse's). Subparsers made by ``add_subparsers`` are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print_error(argparse_zh(message), message)
        sys.exit(EXIT_USAGE)


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    try:
        return metadata.version("suishenma")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")


def add_code_argument(parser: argparse.ArgumentParser) -> None:
    """A code as the positional argument (quote it in single quotes), ``-`` for stdin, or ``--file``."""
    parser.add_argument("code", nargs="?", help="the code text in single quotes, or - to read it from stdin")
    parser.add_argument("--file", help="read the code from this file")


def read_code(args: argparse.Namespace) -> str:
    """The code named by ``add_code_argument``'s options, surrounding whitespace removed.

    Raises:
        UsageError: none or two sources given, or the file cannot be read.
    """
    if (args.code is None) == (args.file is None):
        raise UsageError("give the code, '-' to read it from stdin, or --file FILE (one of them)")
    if args.file is not None:
        try:
            with open(args.file, encoding="utf-8") as f:
                text = f.read(MAX_CODE_FILE)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {args.file}: {exc}") from None
    elif args.code == "-":
        text = sys.stdin.read(MAX_CODE_FILE)
    else:
        text = args.code
    return str(text).strip()


@contextmanager
def closed_stdout_ends_quietly() -> Iterator[None]:
    """Turn a ``BrokenPipeError`` from writing to a reader that went away (``| head``) into a quiet
    ``SystemExit(141)``, as a program killed by SIGPIPE would end in a shell, without a traceback or an
    "error: Broken pipe" line. A command's own ``except OSError`` must let ``BrokenPipeError`` through.

    Raises:
        SystemExit: 141 when standard output was closed under the command.
    """
    try:
        yield
        sys.stdout.flush()  # inside the guard: the interpreter's own final flush would print the error
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit (see the signal module's docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise SystemExit(EXIT_PIPE) from None


def run(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s code: every console script's entry point. A reader that stops early
    (``| head``) ends the program quietly with exit code 141.

    Raises:
        SystemExit: always.
    """
    with closed_stdout_ends_quietly():
        code = main()
    sys.exit(code)
