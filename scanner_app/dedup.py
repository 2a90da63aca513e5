"""The same code held in front of the camera is verified once; a new code gets a verdict at once.

While ``fresh`` says False for the code whose verdict is showing, the loop keeps that verdict on screen: it
goes back to waiting only once the code has been out of view for the hold time.
"""

from __future__ import annotations


class Dedup:
    """``fresh(text, now)`` is True for a code not seen in the last ``forget_s`` seconds."""

    def __init__(self, forget_s: float = 3.0) -> None:
        self.forget_s = forget_s
        self._last: str | None = None
        self._seen_at = float("-inf")

    def fresh(self, text: str, now: float) -> bool:
        same = text == self._last and now - self._seen_at <= self.forget_s
        self._last, self._seen_at = text, now
        return not same
