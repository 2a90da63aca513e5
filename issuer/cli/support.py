"""What ``suishenma-issuer`` shares with command-line tools people already know: errors in Chinese and
English, usage errors with exit code 2, JSON for scripts, and quiet exits when ``| head`` stops reading."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

# argparse's own messages, in Chinese (the English follows on the next line).
_ARGPARSE_ZH: tuple[tuple[str, str], ...] = (
    (r"the following arguments are required: (.*)", r"缺少必需的参数：\1"),
    (r"unrecognized arguments: (.*)", r"无法识别的参数：\1"),
    (r"argument (\S+): invalid choice: (.*) \(choose from (.*)\)", r"参数 \1 的取值 \2 无效，可选：\3"),
    (r"argument (\S+): expected one argument", r"参数 \1 后面需要一个值"),
    (r"argument (\S+): invalid (\S+) value: (.*)", r"参数 \1 的值 \3 无效（应为 \2）"),
    (r"argument (\S+): ambiguous option: (.*)", r"参数 \1 有歧义：\2"),
)


def argparse_zh(message: str) -> str:
    for pattern, template in _ARGPARSE_ZH:
        if re.fullmatch(pattern, message):
            return re.sub(pattern, template, message)
    return f"参数有误：{message}"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are in both languages (exit code 2, as argparse's)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print_error(argparse_zh(message), message)
        sys.exit(2)


def print_error(zh: str, en: str) -> None:
    """One line in Chinese, then the same in English, on standard error."""
    print(f"错误：{zh}", file=sys.stderr)
    print(f"error: {en}", file=sys.stderr)


def print_warning(zh: str, en: str) -> None:
    print(f"警告：{zh}", file=sys.stderr)
    print(f"warning: {en}", file=sys.stderr)


def print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


# The shell's code for a process ended by SIGPIPE (128 + 13): what `seq 1 1e6 | head -1` leaves in
# PIPESTATUS; a script can tell "the reader went away" from a failure.
EXIT_PIPE = 141


def exit_with(main: Callable[[], int]) -> NoReturn:
    """``sys.exit(main())``, but a reader that stops early (``| head``) ends the command quietly, without
    a ``BrokenPipeError`` traceback, as in the Python documentation's note on SIGPIPE."""
    try:
        code = main()
        sys.stdout.flush()  # inside the try: the interpreter's own final flush would print the error
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more reaches the closed pipe at exit
        code = EXIT_PIPE
    sys.exit(code)
