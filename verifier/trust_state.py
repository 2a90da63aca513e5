"""The verifier's trust state machine: bytes in, verified lists out, or a ListError (DESIGN §3, §7.1).

No IO: sync fetches, the store persists; this decides. A list is accepted only if it chains to the
pinned root (trust list) or to a key the trust list gives its issuer (status list), its version is
not lower than the one held, and it has not expired. Held versions outlive unusable bodies, so an
expired list can never be replaced by an older one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from suishenma import (
    ListError,
    Reason,
    SignedStatusList,
    SignedTimestamp,
    SuishenmaError,
    TrustList,
    VerificationKey,
    parse_delta,
    parse_status_list,
    parse_timestamp,
    parse_trust_list,
    vouched,
)

TRUST = "trust"
log = logging.getLogger(__name__)
_T = TypeVar("_T")


STATUS_PREFIX = "status:"


def status_name(issuer: str) -> str:
    return STATUS_PREFIX + issuer


def issuer_of(name: str) -> str:
    """The issuer whose status list a held list's name denotes (``status:SH`` -> ``SH``)."""
    return name.removeprefix(STATUS_PREFIX)


@dataclass(frozen=True)
class HeldList:
    """A stored list: its bytes and what we know about its freshness.

    A status list whose issuer publishes signed timestamps is held as the last full list (``body``), the
    changes applied since (``delta``, one delta from ``body``'s version to ``version``) and the newest
    timestamp (``stamp``); its ``checked_at`` is that timestamp's signed time, never this machine's.
    """

    name: str
    version: int
    body: bytes
    etag: str | None
    checked_at: int  # the last time an issuer confirmed it: a timestamp's signed time, or a 200 or 304's arrival
    expires_at: int
    delta: bytes | None = None
    stamp: bytes | None = None


class TrustState:
    """The lists a verifier holds, already verified."""

    def __init__(self, root: VerificationKey) -> None:
        self.root = root
        self.trust: TrustList | None = None
        self.status: dict[str, SignedStatusList] = {}
        self.held: dict[str, HeldList] = {}
        self.versions: dict[str, int] = {}  # highest version ever accepted, per list

    def load(self, lists: list[HeldList], versions: dict[str, int], now: int) -> list[str]:
        """Re-verify cached lists; drop what no longer verifies. Returns the problems found."""
        self.versions = dict(versions)
        problems = []
        trust = next((h for h in lists if h.name == TRUST), None)
        if trust is not None:
            try:
                self.trust = parse_trust_list(trust.body, self.root, now=now)
                self.held[TRUST] = trust
            except Exception as exc:
                problems.append(f"cached trust list unusable: {exc}")
        for h in lists:
            if h.name == TRUST or self.trust is None:
                continue
            issuer = issuer_of(h.name)
            try:
                lst = self._reread(self.trust, issuer, h, now)
                self.status[issuer] = lst
                self.held[h.name] = h
            except Exception as exc:
                problems.append(f"cached status list of {issuer} unusable: {exc}")
        return problems

    @staticmethod
    def _reread(trust: TrustList, issuer: str, h: HeldList, now: int) -> SignedStatusList:
        """A held status list verified again: its full list, the changes since and the timestamp that vouches
        for the result (whose signature still proves what it said then, expired or not).

        Raises: ListError, or whatever a damaged held body makes a parser raise (the caller drops the list).
        """
        keys = trust.keys_for(issuer)
        lst = parse_status_list(h.body, keys, now=None if h.stamp else now)
        if lst.issuer != issuer:
            raise ListError(Reason.LIST_WRONG_SIGNER, f"holds the status list of {lst.issuer!r}")
        if h.delta is not None:
            lst = parse_delta(h.delta).apply_to(lst)
        if h.stamp is not None:
            lst = vouched(lst, parse_timestamp(h.stamp, keys, now=None))
        if lst.expires_at <= now:
            raise ListError(Reason.LIST_EXPIRED, f"expired {now - lst.expires_at} s ago")
        return lst

    def check_timestamp(self, issuer: str, body: bytes, trust: TrustList, now: int) -> SignedTimestamp:
        """Raises: ListError (LIST_WRONG_SIGNER when not signed by a key the trust list gives ``issuer`` or
        naming another issuer; LIST_ROLLBACK when it names a version older than one held; LIST_EXPIRED,
        LIST_MALFORMED, TOO_LARGE)."""
        ts = as_list_error(lambda: parse_timestamp(body, trust.keys_for(issuer), now=now))
        if ts.issuer != issuer:
            raise ListError(Reason.LIST_WRONG_SIGNER, f"the timestamp of {ts.issuer!r} was served as {issuer!r}'s")
        held = self.versions.get(status_name(issuer))
        if held is not None and ts.version < held:
            raise ListError(Reason.LIST_ROLLBACK, f"the timestamp names version {ts.version} < held {held}")
        return ts

    def check_trust_list(self, body: bytes, now: int) -> TrustList:
        """Raises: ListError (TOO_LARGE, LIST_MALFORMED, LIST_WRONG_SIGNER, LIST_EXPIRED, LIST_ROLLBACK)."""
        trust = as_list_error(lambda: parse_trust_list(body, self.root, now=now))
        trust.check_newer(self.versions.get(TRUST))
        return trust

    def check_status_list(self, issuer: str, body: bytes, trust: TrustList, now: int) -> SignedStatusList:
        """Raises: ListError (LIST_WRONG_SIGNER when signed by a key the trust list does not give ``issuer``
        or naming another issuer: a region's host serving another region's list, whatever URL it came
        from; LIST_MALFORMED, LIST_EXPIRED, LIST_ROLLBACK, TOO_LARGE)."""
        lst = as_list_error(lambda: parse_status_list(body, trust.keys_for(issuer), now=now))
        if lst.issuer != issuer:
            raise ListError(Reason.LIST_WRONG_SIGNER, f"the status list of {lst.issuer!r} was served as {issuer!r}'s")
        lst.check_newer(self.versions.get(status_name(issuer)))
        return lst

    def adopt(
        self,
        trust: TrustList | None,
        status: dict[str, SignedStatusList],
        held: list[HeldList],
        confirmed: dict[str, int],
        dropped: list[str],
    ) -> None:
        """Install lists that passed the checks above (and were stored); mark ``confirmed`` ones fresh as
        of the given time; forget the ``dropped`` ones. Builds new dicts rather than changing the held
        ones, so a reader that took references under the lock keeps a consistent snapshot without copying.
        """
        new_status = dict(self.status)
        if trust is not None:
            # an issuer dropped from the trust list loses its status list too
            new_status = {i: s for i, s in new_status.items() if i in trust.issuer_ids()}
        new_status.update(status)
        new_held = {n: h for n, h in self.held.items() if n not in dropped}
        for h in held:
            new_held[h.name] = h
            self.versions[h.name] = max(self.versions.get(h.name, 0), h.version)
        for name, at in confirmed.items():
            old = new_held.get(name)
            if old is not None and old.checked_at < at:
                new_held[name] = replace(old, checked_at=at)
        if trust is not None:
            self.trust = trust
        self.status, self.held = new_status, new_held


def as_list_error(parse: Callable[[], _T]) -> _T:
    """Run a list parser; whatever it raises is a ListError, so sync moves on to the next list or mirror.

    The core raises only its own errors; anything else is a decoder bug that bytes from the network
    found, and must cost one list, never the sync.
    """
    try:
        return parse()
    except SuishenmaError:
        raise
    except Exception as exc:
        log.exception("list parser failed on untrusted bytes")
        raise ListError(Reason.LIST_MALFORMED, f"undecodable: {type(exc).__name__}") from None
