"""Signed timestamps: an issuer's frequent, tiny statement of its current status list (docs/format.md §6, "Freshness").

As TUF's timestamp role bounds freeze attacks, a timestamp is re-signed every few minutes whether or not
anything changed, and expires minutes later. A verifier fetches it on every sync and judges a list's
freshness by the newest valid timestamp's *signed* time, never by a host answering 304 or re-serving a
body: a mirror that freezes can only replay timestamps, and they expire.

A timestamp is a COSE_Sign1 (tag 18, typ ``application/suishenma-timestamp+cwt``) over CWT claims:

- ``iss`` (1): the issuer id; ``iat`` (6) and ``exp`` (4): POSIX seconds;
- our private claim (-65537), a map: ``LIST_VERSION`` (10) the current status-list version, ``LIST_SIZE``
  (12) its number of entries and ``LIST_DIGEST`` (15) the digest of its content (``list_digest``). The size
  lets a verifier refuse a delta that would make a list of another size before it allocates one.

It is signed by one of the issuer's keys in the trust list, like its status lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from . import _cbor, _cose
from ._signed_list import get, open_signed
from .errors import ListError, Reason, UsageError
from .keys import SigningKey, VerificationKey
from .labels import TIMESTAMP_TYP, Claim, Header, SmField
from .statuslist import MAX_ENTRIES, SignedStatusList, list_digest

__all__ = ["SignedTimestamp", "list_digest", "parse_timestamp", "sign_timestamp", "vouched"]

MAX_TIMESTAMP_BYTES = 1024
DIGEST_BYTES = 32
MAX_VERSION = 2**63 - 1


@dataclass(frozen=True)
class SignedTimestamp:
    """A verified timestamp: at ``issued_at``, the current status list of ``issuer`` was ``version``, whose
    content hashes to ``digest``."""

    issuer: str
    version: int
    digest: bytes
    issued_at: int
    expires_at: int
    size: int


def sign_timestamp(
    key: SigningKey, *, issuer: str, version: int, size: int, digest: bytes, now: int, valid_for: int
) -> bytes:
    """Sign "``issuer``'s current status list is ``version``, of ``size`` entries, hashing to ``digest``", valid
    ``valid_for`` seconds.

    Raises:
        UsageError: an empty issuer, a version or duration out of range, a digest that is not 32 bytes.
    """
    if not issuer or not 1 <= version <= MAX_VERSION or valid_for <= 0 or now < 0 or not 0 < size <= MAX_ENTRIES:
        raise UsageError("a timestamp needs an issuer, a version of at least 1, a size and a positive validity")
    if len(digest) != DIGEST_BYTES:
        raise UsageError(f"digest must be {DIGEST_BYTES} bytes (a SHA-256)")
    claims = {
        int(Claim.ISS): issuer,
        int(Claim.IAT): now,
        int(Claim.EXP): now + valid_for,
        int(Claim.SUISHENMA): {
            int(SmField.LIST_VERSION): version,
            int(SmField.LIST_SIZE): size,
            int(SmField.LIST_DIGEST): bytes(digest),
        },
    }
    return _cose.sign(_cbor.dumps(claims), key, {Header.TYP: TIMESTAMP_TYP})


def parse_timestamp(data: bytes, keys: Mapping[bytes, VerificationKey], *, now: int | None) -> SignedTimestamp:
    """Verify a timestamp signed by one of ``keys`` (its issuer's keys). With ``now``, one that has expired is
    refused; without (re-reading one held earlier), only its signature and form are checked: what it
    says of its own ``issued_at`` stays true.

    Raises:
        ListError: TOO_LARGE, LIST_MALFORMED (structure, typ, a field out of range), LIST_WRONG_SIGNER or
            LIST_EXPIRED.
    """
    if len(data) > MAX_TIMESTAMP_BYTES:
        raise ListError(Reason.TOO_LARGE, f"timestamp over {MAX_TIMESTAMP_BYTES} bytes")
    claims, _ = open_signed(data, keys, TIMESTAMP_TYP, max_items=16)
    ours = get(claims, Claim.SUISHENMA, dict)
    ts = SignedTimestamp(
        issuer=get(claims, Claim.ISS, str),
        version=get(ours, SmField.LIST_VERSION, int),
        digest=get(ours, SmField.LIST_DIGEST, bytes),
        issued_at=get(claims, Claim.IAT, int),
        expires_at=get(claims, Claim.EXP, int),
        size=get(ours, SmField.LIST_SIZE, int),
    )
    if len(ts.digest) != DIGEST_BYTES or not 1 <= ts.version <= MAX_VERSION or not 0 < ts.size <= MAX_ENTRIES:
        raise ListError(Reason.LIST_MALFORMED, "digest must be 32 bytes, the version at least 1, the size in range")
    if not 0 <= ts.issued_at < ts.expires_at:
        raise ListError(Reason.LIST_MALFORMED, "a timestamp must expire after it was issued")
    if now is not None and ts.expires_at <= now:
        raise ListError(Reason.LIST_EXPIRED, f"timestamp expired {now - ts.expires_at} s ago")
    return ts


def vouched(lst: SignedStatusList, ts: SignedTimestamp) -> SignedStatusList:
    """``lst`` as the timestamp vouches for it: current at ``ts.issued_at``, and valid for the list's own
    validity counted from then (an issuer re-signs its full list only every few days; its timestamps
    carry it between).

    Raises:
        ListError: LIST_DELTA_MISMATCH when ``ts`` names another issuer, version or content.
    """
    if lst.issuer != ts.issuer or lst.version != ts.version or lst.size != ts.size or lst.digest != ts.digest:
        raise ListError(
            Reason.LIST_DELTA_MISMATCH,
            f"the list held is version {lst.version} of {lst.issuer!r}; the timestamp names version {ts.version}"
            f" of {ts.issuer!r}{' with another digest' if lst.version == ts.version else ''}",
        )
    span = lst.expires_at - lst.issued_at
    return replace(lst, issued_at=max(lst.issued_at, ts.issued_at), expires_at=max(lst.expires_at, ts.issued_at + span))
