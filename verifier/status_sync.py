"""Renewing one issuer's status list (docs/format.md §6, "Freshness"): IO and checks, no installs.

When the issuer's trust-list entry names a timestamp, every sync fetches it (a couple of hundred bytes),
and then only what changed: nothing when the timestamp names the version held, the delta from the held
version when it names a newer one, the full list when no delta fits. The list's freshness is the newest
valid timestamp's signed time; a 304 or a re-served body proves nothing. An entry without a timestamp is
renewed as before: the whole list, revalidated with its ETag.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit

from suishenma import (
    ListError,
    Reason,
    SignedStatusList,
    SignedTimestamp,
    SuishenmaError,
    TrustList,
    parse_delta,
    vouched,
)
from suishenma.freshness import MAX_TIMESTAMP_BYTES
from suishenma.statusdelta import MAX_DELTA_BYTES

from .clock import ClockSample
from .fetch import Fetcher, FetchResult
from .trust_state import HeldList, TrustState, as_list_error, status_name

MAX_STATUS_BYTES = 16 << 20  # a 2-bit list of 32 million entries is well under 2 MB compressed
REBASE_FRACTION = 2  # the changes kept since the full list may grow to this fraction of it (1/2)


@dataclass
class Renewal:
    """What one issuer's renewal came to: a list to install (``held``/``lst``), or a 304 confirming the held
    one at ``confirmed_at`` (no timestamp), or the ``error`` that stopped it; with the clock evidence of
    every answer and ``notes`` on what was fetched instead of what was hoped for."""

    issuer: str
    lst: SignedStatusList | None = None
    held: HeldList | None = None
    confirmed_at: int | None = None
    error: SuishenmaError | None = None
    samples: list[ClockSample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    downloaded: str = ""  # "timestamp", "delta" or "full": the largest thing fetched


def delta_url(status_url: str, first: int, last: int) -> str:
    """Where the delta from version ``first`` to ``last`` lies, under the status list's URL."""
    return f"{status_url.rstrip('/')}/deltas/{first}/{last}"


def renew(
    state: TrustState, fetcher: Fetcher, trust: TrustList, issuer: str, status_url: str, stamp_url: str | None, now: int
) -> Renewal:
    """Renew ``issuer``'s status list. Never raises: a failure is the outcome's ``error``."""
    out = Renewal(issuer)
    try:
        if stamp_url is None:
            _whole_list(state, fetcher, trust, status_url, now, out)
        else:
            _from_timestamp(state, fetcher, trust, status_url, stamp_url, now, out)
    except SuishenmaError as exc:
        out.error = exc
    return out


def _whole_list(state: TrustState, fetcher: Fetcher, trust: TrustList, url: str, now: int, out: Renewal) -> None:
    """Raises: NetworkError, ListError."""
    name = status_name(out.issuer)
    held = state.held.get(name) if out.issuer in state.status else None
    result = fetcher.fetch(url, held.etag if held else None, MAX_STATUS_BYTES)
    if result.status == 304 and held is not None:
        out.confirmed_at = now
        out.samples.append(sample_of(result, now, None))
        return
    lst = state.check_status_list(out.issuer, result.body, trust, now)
    out.samples.append(sample_of(result, now, lst.issued_at))
    out.lst, out.downloaded = lst, "full"
    out.held = HeldList(name, lst.version, result.body, result.etag, now, lst.expires_at)


def _from_timestamp(
    state: TrustState, fetcher: Fetcher, trust: TrustList, status_url: str, stamp_url: str, now: int, out: Renewal
) -> None:
    """Raises: NetworkError, ListError (the timestamp's, or the full list's when nothing smaller fits)."""
    name = status_name(out.issuer)
    result = fetcher.fetch(stamp_url, None, MAX_TIMESTAMP_BYTES)
    ts = state.check_timestamp(out.issuer, result.body, trust, now)
    out.samples.append(sample_of(result, now, ts.issued_at))
    out.downloaded = "timestamp"
    current, held = state.status.get(out.issuer), state.held.get(name)
    if current is not None and held is not None and current.version == ts.version:
        try:
            lst = vouched(current, ts)
        except ListError as exc:  # the same version with other content: trust neither, fetch it whole
            out.notes.append(f"{exc.reason.value}: {exc.detail}")
        else:
            if held.stamp is not None and lst.issued_at <= current.issued_at:
                return  # a replay of an older timestamp (still valid): it confirms nothing new, keep the newer
            # signed times only: a checked_at left from whole-list syncs is this machine's clock
            checked = ts.issued_at if held.stamp is None else max(held.checked_at, ts.issued_at)
            out.lst, out.held = lst, replace(held, checked_at=checked, expires_at=lst.expires_at, stamp=result.body)
            return
    elif (
        current is not None
        and held is not None
        and current.version < ts.version
        and _apply_delta(fetcher, status_url, current, held, ts, result.body, out)
    ):
        return
    _full_list(state, fetcher, trust, status_url, ts, result.body, now, out)


def _apply_delta(
    fetcher: Fetcher,
    status_url: str,
    current: SignedStatusList,
    held: HeldList,
    ts: SignedTimestamp,
    stamp: bytes,
    out: Renewal,
) -> bool:
    """Bring the held list to the timestamp's version with a delta; False (with a note) when none fits."""
    url = delta_url(status_url, current.version, ts.version)
    try:
        result = fetcher.fetch(url, None, MAX_DELTA_BYTES)
        delta = as_list_error(lambda: parse_delta(result.body))
        if delta.size != ts.size or delta.to_version != ts.version:  # before a list of its size is allocated
            raise ListError(
                Reason.LIST_DELTA_MISMATCH,
                f"the delta makes version {delta.to_version} of {delta.size} entries; the timestamp names"
                f" {ts.version} of {ts.size}",
            )
        lst = vouched(as_list_error(lambda: delta.apply_to(current)), ts)
        before = held.delta
        since_full = as_list_error(lambda: parse_delta(before)).then(delta) if before else delta
        changes = since_full.to_bytes()
    except SuishenmaError as exc:
        out.notes.append(f"delta {current.version} to {ts.version}: {exc.reason.value}: {exc.detail}")
        return False
    if len(changes) > len(held.body) // REBASE_FRACTION:
        # The changes kept since the full list have grown to half its size: every sync re-reads them, so a
        # new full list (vouched by the same timestamp) is the cheaper thing to hold from now on.
        out.notes.append(f"{len(changes)} bytes of changes since the full list: fetching a new full list")
        return False
    out.lst, out.downloaded = lst, "delta"
    out.held = HeldList(held.name, lst.version, held.body, held.etag, ts.issued_at, lst.expires_at, changes, stamp)
    return True


def _full_list(
    state: TrustState,
    fetcher: Fetcher,
    trust: TrustList,
    url: str,
    ts: SignedTimestamp,
    stamp: bytes,
    now: int,
    out: Renewal,
) -> None:
    """Raises: NetworkError, ListError."""
    result = fetcher.fetch(url, None, MAX_STATUS_BYTES)
    full = state.check_status_list(out.issuer, result.body, trust, now)
    out.samples.append(sample_of(result, now, full.issued_at))
    out.downloaded = "full"
    try:
        lst, checked, kept_stamp = vouched(full, ts), ts.issued_at, stamp
    except ListError as exc:
        # Not the version the timestamp names (a mirror behind, or a version signed since): held as a
        # signed list, fresh as of its own signing time only.
        out.notes.append(f"the full list is version {full.version}, the timestamp names {ts.version}: {exc.detail}")
        lst, checked, kept_stamp = full, full.issued_at, None
    out.lst = lst
    name = status_name(out.issuer)
    out.held = HeldList(name, lst.version, result.body, result.etag, checked, lst.expires_at, None, kept_stamp)


def sample_of(result: FetchResult, now: int, signed_iat: int | None) -> ClockSample:
    """The clock evidence of one answer; a fetcher that does not stamp answers is taken as answering at ``now``."""
    received = result.received_at if result.received_at is not None else float(now)
    return ClockSample(received, result.server_date, signed_iat)


def entry_urls(trust: TrustList, issuer: str, base: str) -> tuple[str, str | None] | None:
    """(status list URL, timestamp URL or None) of ``issuer``, resolved against the mirror ``base``; None
    when its entry names no status list, or only a relative one and no mirror answered."""
    entry = next((e for e in trust.issuers if e.issuer == issuer and e.status_uri), None)
    if entry is None or entry.status_uri is None:
        return None
    root = base.rstrip("/") + "/"
    if not (base or urlsplit(entry.status_uri).scheme):
        return None
    stamp = entry.timestamp_uri
    if stamp is not None and not (base or urlsplit(stamp).scheme):
        stamp = None
    return urljoin(root, entry.status_uri), None if stamp is None else urljoin(root, stamp)
