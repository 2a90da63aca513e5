"""Masking of names and ID numbers before they enter a code: only masked forms ever leave the issuer."""

from __future__ import annotations

import unicodedata

from .errors import UsageError

MAX_NAME = 64
MAX_ID_NUMBER = 32

# Control (Cc), format (Cf: bidi overrides, zero-width), surrogate, private-use and unassigned
# characters, and line/paragraph separators: none belongs in a name shown on a kiosk screen.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def unprintable_character(text: str) -> str | None:
    """The first character of ``text`` that must never be displayed, or None when all are safe."""
    if text.isprintable():  # C speed; it refuses only our categories and spaces other than U+0020
        return None
    for c in text:
        if unicodedata.category(c) in _UNPRINTABLE:
            return c
    return None


def check_display_text(text: str, what: str = "text") -> str:
    """Return ``text`` when it holds only printable characters.

    Raises:
        UsageError: a control, format (e.g. U+202E bidi override), separator or unassigned
            character, named by its code point.
    """
    bad = unprintable_character(text)
    if bad is not None:
        raise UsageError(f"{what} contains the unprintable character U+{ord(bad):04X}")
    return text


def mask_name(name: str) -> str:
    """``张三`` -> ``张*``, ``张小三`` -> ``张*三``; longer names keep first and last only.

    Raises:
        UsageError: the name is empty, longer than ``MAX_NAME``, or holds an unprintable
            character (control, bidi override, line separator; see ``check_display_text``).
    """
    name = check_display_text(name, "name").strip()
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
