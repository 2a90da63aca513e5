"""Clock checks: how far this machine's clock is from its issuers' (DESIGN §4, "reports its own clock's skew").

A 60-second code is only as good as the kiosk's clock. Each sync gives two kinds of evidence, and this
module weighs them; it does no IO and reads no clock (the times come in):

- **signed**: every list accepted in a sync carries its signer's issue time (``iat``). The issuer's
  clock read at least that much when the list reached us, so a local clock earlier than ``iat`` is
  behind by at least the difference. Signed, so no one on the path can fake it; but one-sided (a list
  may be days old, so it never shows a clock that is ahead).
- **http-date**: each answer's HTTP ``Date`` header (RFC 9110 §6.6.1) against this machine's clock when
  the answer arrived. Both directions, to about a second, but unsigned: it is the fallback, and signed
  evidence of a clock further behind wins.

``skew_s`` is local minus issuer: positive when this clock is ahead.

A clock set back after a sync shows in no reading until the next sync, so the verifier also keeps a
*floor*: the latest time it has seen trustworthily (see ``clock_wrong``), kept in its state folder.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

SIGNED, HTTP_DATE = "signed", "http-date"
DATE_RESOLUTION_S = 0.5  # a Date header is truncated to the second: on average half a second early


@dataclass(frozen=True)
class ClockReading:
    """What the last sync learnt of this clock."""

    skew_s: float  # local minus issuer; positive: this clock is ahead
    source: str  # SIGNED or HTTP_DATE
    measured_at: int  # this machine's time of the reading (POSIX seconds)


@dataclass(frozen=True)
class ClockSample:
    """One answer's evidence: the signed issue time of a list it carried, and/or its Date header."""

    received_at: float  # local wall clock when the answer arrived
    server_date: float | None = None
    signed_iat: int | None = None


def estimate(samples: Iterable[ClockSample]) -> ClockReading | None:
    """The skew the samples show, or None when they show nothing (no Date header, no list from the future).

    The Date headers' median is the estimate; a signed issue time later than the local clock overrides it
    whenever it proves the clock further behind than the headers say.
    """
    samples = list(samples)
    if not samples:
        return None
    at = int(max(s.received_at for s in samples))
    dated = [s.received_at - (s.server_date + DATE_RESOLUTION_S) for s in samples if s.server_date is not None]
    behind = [
        s.received_at - s.signed_iat for s in samples if s.signed_iat is not None and s.signed_iat > s.received_at
    ]
    signed = min(behind) if behind else None
    header = statistics.median(dated) if dated else None
    if signed is not None and (header is None or signed < header - 1):
        return ClockReading(round(signed, 1), SIGNED, at)
    if header is not None:
        return ClockReading(round(header, 1), HTTP_DATE, at)
    return None


def issuer_time(reading: ClockReading) -> int:
    """The issuers' time at the instant of ``reading``: this machine's time then, corrected by the skew."""
    return int(reading.measured_at - reading.skew_s)


def clock_wrong(reading: ClockReading | None, floor: int | None, at: int, allowed_s: int) -> bool:
    """True when this clock cannot be trusted with codes that live for a minute.

    Wrong when the last reading is off by more than ``allowed_s`` (the scenario's skew allowance), or
    when ``at`` is more than ``allowed_s`` before ``floor``: a time this clock has been seen to pass (the
    latest signed issue time of a held list, the issuers' time at the last sync that measured it, the
    newest verdict logged), so it went backwards since.
    """
    if reading is not None and abs(reading.skew_s) > allowed_s:
        return True
    return floor is not None and at + allowed_s < floor
