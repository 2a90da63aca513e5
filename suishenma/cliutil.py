"""What every command line of the project does alike: ``--version``, codes from an argument, stdin or a
file (codes hold ``$ % *`` and spaces, which shells mangle), and quiet exits when output goes to a pipe
that closes early (``... | head``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib import metadata

from .errors import UsageError

MAX_CODE_FILE = 64 * 1024


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


def run(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s code; a reader that stops early (``| head``) ends the program quietly."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit (see the signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
