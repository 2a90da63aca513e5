"""Trust lists: which issuer keys a verifier trusts, signed by a pinned root key (DESIGN §3).

A trust list is a COSE_Sign1 (typ ``application/suishenma-trustlist+cwt``) over CWT claims: iss
(the root's name), iat, exp, and in our private claim a version that only grows and the issuer
entries (docs/format.md §4). ``parse_trust_list`` is pure: bytes, the pinned root and ``now`` in,
a ``TrustList`` out, or an error. Rollback is the caller's check (``check_newer``), because only
the caller knows which version it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from . import _cbor, _cose
from ._signed_list import get, open_signed
from .errors import KeyFileError, ListError, Reason, UsageError
from .keyring import KeyRing, TrustedKey
from .keys import SigningKey, VerificationKey
from .labels import TRUST_LIST_TYP, Alg, Claim, CodeType, Header, SmField, TrustField

MAX_TRUST_LIST_BYTES = 1024 * 1024
MAX_ISSUERS = 1000
# A slot (TrustField.SLOT) is a divisor of a day: K >= 4 credentials a day, so at most 6 hours.
MIN_SLOT, MAX_SLOT = 60, 6 * 3600


@dataclass(frozen=True)
class IssuerEntry:
    """One trusted issuer key and what it may sign."""

    key: VerificationKey
    issuer: str
    valid_from: int
    valid_until: int
    code_types: frozenset[CodeType] = frozenset(CodeType)
    status_uri: str | None = None
    previous_forms_until: int | None = None
    slot: int | None = None
    timestamp_uri: str | None = None  # where the issuer's signed timestamp is (freshness.py); None: none

    def to_cbor(self) -> dict[int, object]:
        m: dict[int, object] = {
            int(TrustField.KID): self.key.kid,
            int(TrustField.ALG): int(self.key.alg),
            int(TrustField.PUBLIC_KEY): self.key.der,
            int(TrustField.ISSUER): self.issuer,
            int(TrustField.VALID_FROM): self.valid_from,
            int(TrustField.VALID_UNTIL): self.valid_until,
            int(TrustField.CODE_TYPES): sorted(int(t) for t in self.code_types),
        }
        if self.status_uri:
            m[int(TrustField.STATUS_URI)] = self.status_uri
        if self.previous_forms_until is not None:
            m[int(TrustField.PREVIOUS_FORMS_UNTIL)] = self.previous_forms_until
        if self.slot is not None:
            m[int(TrustField.SLOT)] = self.slot
        if self.timestamp_uri:
            m[int(TrustField.TIMESTAMP_URI)] = self.timestamp_uri
        return m

    @classmethod
    def from_cbor(cls, m: object) -> IssuerEntry:
        """Raises: ListError (LIST_MALFORMED)."""
        if not isinstance(m, dict):
            raise ListError(Reason.LIST_MALFORMED, "issuer entry is not a map")
        alg = get(m, TrustField.ALG, int)
        types = get(m, TrustField.CODE_TYPES, list)
        if alg not in Alg._value2member_map_ or not all(type(t) is int for t in types):
            raise ListError(Reason.LIST_MALFORMED, "unknown algorithm, or a code type that is not an integer")
        # Code types added by later versions are ignored, not fatal: an old kiosk keeps syncing and
        # simply cannot accept the new type.
        types = [t for t in types if t in CodeType._value2member_map_]
        try:
            key = VerificationKey.from_der(
                get(m, TrustField.PUBLIC_KEY, bytes), Alg(alg), get(m, TrustField.KID, bytes)
            )
        except KeyFileError as exc:
            raise ListError(Reason.LIST_MALFORMED, f"issuer key: {exc.detail}") from None
        slot = get(m, TrustField.SLOT, int, required=False)
        if slot is not None and not (MIN_SLOT <= slot <= MAX_SLOT and 86400 % slot == 0):
            raise ListError(Reason.LIST_MALFORMED, f"slot {slot} s is not a divisor of a day of 60 s to 6 h")
        return cls(
            key=key,
            issuer=get(m, TrustField.ISSUER, str),
            valid_from=get(m, TrustField.VALID_FROM, int),
            valid_until=get(m, TrustField.VALID_UNTIL, int),
            code_types=frozenset(CodeType(t) for t in types),
            status_uri=get(m, TrustField.STATUS_URI, str, required=False),
            previous_forms_until=get(m, TrustField.PREVIOUS_FORMS_UNTIL, int, required=False),
            slot=slot,
            timestamp_uri=get(m, TrustField.TIMESTAMP_URI, str, required=False),
        )

    def trusted_key(self) -> TrustedKey:
        return TrustedKey(
            self.key,
            self.issuer,
            self.valid_from,
            self.valid_until,
            self.code_types,
            self.status_uri,
            self.previous_forms_until,
            self.slot,
        )


@dataclass(frozen=True)
class TrustList:
    """A verified trust list."""

    version: int
    issued_at: int
    expires_at: int
    issuers: tuple[IssuerEntry, ...]
    root_name: str = "root"
    keyring: KeyRing = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyring", KeyRing(e.trusted_key() for e in self.issuers))

    def issuer_ids(self) -> list[str]:
        """Distinct issuer ids, in list order."""
        return list(dict.fromkeys(e.issuer for e in self.issuers))

    def keys_for(self, issuer: str) -> dict[bytes, VerificationKey]:
        """Keys of one issuer by kid: the keys allowed to sign that issuer's status lists."""
        return {e.key.kid: e.key for e in self.issuers if e.issuer == issuer}

    def check_newer(self, held_version: int | None) -> None:
        """Raises: ListError (LIST_ROLLBACK) when older than ``held_version``."""
        if held_version is not None and self.version < held_version:
            raise ListError(Reason.LIST_ROLLBACK, f"version {self.version} < held {held_version}")


def sign_trust_list(
    issuers: Iterable[IssuerEntry], root: SigningKey, *, version: int, now: int, ttl: int, root_name: str = "root"
) -> bytes:
    """Sign a trust list valid from ``now`` for ``ttl`` seconds.

    Raises:
        UsageError: duplicate kids, version below 1, ttl not positive, too many issuers.
    """
    entries = list(issuers)
    if version < 1 or ttl <= 0 or len(entries) > MAX_ISSUERS:
        raise UsageError("version must be >= 1, ttl > 0, and at most 1000 issuers")
    KeyRing(e.trusted_key() for e in entries)  # raises on duplicate kids
    claims = {
        int(Claim.ISS): root_name,
        int(Claim.IAT): now,
        int(Claim.EXP): now + ttl,
        int(Claim.SUISHENMA): {
            int(SmField.LIST_VERSION): version,
            int(SmField.TRUST_ISSUERS): [e.to_cbor() for e in entries],
        },
    }
    return _cose.sign(_cbor.dumps(claims), root, {Header.TYP: TRUST_LIST_TYP})


def parse_trust_list(data: bytes, root: VerificationKey, *, now: int) -> TrustList:
    """Verify a trust list against the pinned root at ``now`` (DESIGN §3).

    Raises:
        ListError: TOO_LARGE, LIST_MALFORMED, LIST_WRONG_SIGNER (not signed by ``root``) or
            LIST_EXPIRED.
    """
    if len(data) > MAX_TRUST_LIST_BYTES:
        raise ListError(Reason.TOO_LARGE, f"trust list over {MAX_TRUST_LIST_BYTES} bytes")
    claims, _ = open_signed(data, {root.kid: root}, TRUST_LIST_TYP, max_items=MAX_ISSUERS * 20 + 20)
    ours = get(claims, Claim.SUISHENMA, dict)
    version = get(ours, SmField.LIST_VERSION, int)
    entries = get(ours, SmField.TRUST_ISSUERS, list)
    if len(entries) > MAX_ISSUERS:  # a verifier holds no more than any signer may put in
        raise ListError(Reason.LIST_MALFORMED, f"{len(entries)} issuers: at most {MAX_ISSUERS}")
    try:
        tl = TrustList(
            version=version,
            issued_at=get(claims, Claim.IAT, int),
            expires_at=get(claims, Claim.EXP, int),
            issuers=tuple(IssuerEntry.from_cbor(e) for e in entries),
            root_name=get(claims, Claim.ISS, str),
        )
    except UsageError as exc:
        raise ListError(Reason.LIST_MALFORMED, exc.detail) from None
    if tl.expires_at <= now:
        raise ListError(Reason.LIST_EXPIRED, f"expired {now - tl.expires_at} s ago")
    return tl
