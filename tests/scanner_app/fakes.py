"""Stand-ins for the verifier in scanner loop tests that are about frames and decoding, not verdicts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class CountingVerifier:
    """ALLOWs every code and keeps the texts it was asked about; never syncs, has no health to tell."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def verify(self, text: str, now: float | None = None) -> Any:
        self.texts.append(text)
        return SimpleNamespace(
            decision="ALLOW",
            reason="ok",
            message_zh="通过",
            message_en="Pass",
            display={},
            subject=None,
            elapsed_ms=0.1,
        )

    def sync(self, now: float | None = None) -> Any:
        return None

    def health(self, now: float | None = None) -> Any:
        return None
