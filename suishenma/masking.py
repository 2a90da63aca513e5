"""Masking of names and ID numbers before they enter a code: only masked forms ever leave the issuer."""

from __future__ import annotations

from .errors import UsageError

MAX_NAME = 64
MAX_ID_NUMBER = 32


def mask_name(name: str) -> str:
    """``张三`` -> ``张*``, ``张小三`` -> ``张*三``; longer names keep first and last only.

    Raises:
        UsageError: the name is empty or longer than ``MAX_NAME``.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise UsageError(f"name must have 1 to {MAX_NAME} characters")
    if len(name) == 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" + name[-1]


def mask_id_number(number: str) -> str:
    """``310101199001011234`` -> ``3101**********1234``: first and last four kept when long enough.

    Raises:
        UsageError: empty, too long, or not made of digits, letters and ``*``.
    """
    number = number.strip().upper()
    if not number or len(number) > MAX_ID_NUMBER or not all(c.isascii() and (c.isalnum() or c == "*") for c in number):
        raise UsageError(f"ID number must be 1 to {MAX_ID_NUMBER} letters or digits")
    n = len(number)
    if n >= 12:
        return number[:4] + "*" * (n - 8) + number[-4:]
    if n > 4:
        return "*" * (n - 4) + number[-4:]
    return "*" * n
