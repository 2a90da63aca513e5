"""Status lists: revocation of offline codes (IETF Token Status List, CWT form; DESIGN §3).

A status list is a bit string, ``bits`` per index, least significant bits first
(draft-ietf-oauth-status-list §4.1), zlib-compressed and signed by an issuer key inside a CWT
(typ ``application/statuslist+cwt``) with claims sub (the list's URI), iat, exp, ttl (65534) and
status_list (65533) = {"bits", "lst"}; our private claim adds a version that only grows and the
list's size in entries, which the draft leaves out. A transit blacklist is a status list too.

Following the draft (§5.2, January 2026 text): the token is a COSE_Sign1 tagged 18 and never inside the
CWT tag 61; ``ttl`` is a positive integer; a verifier reads lists of 1, 2, 4 or 8 bits per token
(our issuers write 1 or 2: three statuses need no more); a status value other than VALID, INVALID and
SUSPENDED (3 and 12–15 are application-specific, the rest reserved) makes no statement a verifier can
rely on and is read as INVALID (§7.1, §8.3 step 7). docs/format.md §6.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from . import _cbor, _cose
from ._signed_list import get, open_signed
from .errors import ListError, Reason, UsageError
from .keys import SigningKey, VerificationKey
from .labels import (
    STATUS_LIST_BITS,
    STATUS_LIST_BITS_ALLOWED,
    STATUS_LIST_LST,
    STATUS_LIST_TYP,
    Claim,
    EntryStatus,
    Header,
    SmField,
)

MAX_ENTRIES = 1 << 28  # 268 million: 32 MiB at 1 bit, 64 MiB at 2 bits
# Compressed lists of 32 million entries at 1 % revoked take about 475 KB; random data caps it.
MAX_STATUS_LIST_BYTES = 40 * 1024 * 1024
# What our issuers write: three statuses fit in 2 bits.
ALLOWED_BITS = (1, 2)
# A list of 4 or 8 bits per token may hold fewer entries: the inflated bit string is capped at what
# MAX_ENTRIES takes at 2 bits.
MAX_INFLATED_BYTES = MAX_ENTRIES * 2 // 8
_DIGEST_CONTEXT = b"suishenma status list\x00"


def list_digest(bits: int, size: int, data: bytes) -> bytes:
    """SHA-256 over a status list's content: its bit width, its size in entries and its bit string, so two
    lists of equal bytes but other sizes never share a digest (docs/format.md §6, "Freshness")."""
    h = hashlib.sha256(_DIGEST_CONTEXT)
    h.update(bits.to_bytes(1, "big") + size.to_bytes(8, "big"))
    h.update(data)
    return h.digest()


class StatusList:
    """A mutable bit string of statuses, for the issuer to build and update."""

    def __init__(self, size: int, bits: int = 1, data: bytearray | None = None) -> None:
        """Raises: UsageError for a size or bit width out of range."""
        if bits not in ALLOWED_BITS or not 0 < size <= MAX_ENTRIES:
            raise UsageError(f"status lists have 1 or 2 bits and 1 to {MAX_ENTRIES} entries")
        self.size = size
        self.bits = bits
        self._mask = (1 << bits) - 1
        nbytes = (size * bits + 7) // 8
        if data is not None and len(data) != nbytes:
            raise UsageError("data length does not match size and bits")
        self.data = data if data is not None else bytearray(nbytes)

    def get(self, index: int) -> EntryStatus:
        """Status at ``index``. Raises: IndexError when out of range."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        pos = index * self.bits
        return EntryStatus((self.data[pos >> 3] >> (pos & 7)) & self._mask)

    def set(self, index: int, status: EntryStatus) -> None:
        """Raises: IndexError out of range; UsageError for a status the bit width cannot hold."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        if status > self._mask:
            raise UsageError(f"status {status!r} needs 2 bits")
        pos = index * self.bits
        shift = pos & 7
        byte = self.data[pos >> 3]
        self.data[pos >> 3] = (byte & ~(self._mask << shift)) | (int(status) << shift)

    def set_many(self, indices: Iterable[int], status: EntryStatus) -> None:
        """``set`` for each index."""
        for i in indices:
            self.set(i, status)

    def compress(self) -> bytes:
        """zlib at level 9 with the run-length strategy: for a city's sparse list (67 M entries, 1 % revoked)
        it is 10 % larger than the default strategy (1.07 MB against 0.97 MB) and ninety times faster
        (0.06 s against 5.4 s), and since verifiers keep current with deltas, the full list is a rare
        download while the issuer builds one for every version."""
        c = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        return c.compress(self.data) + c.flush()


@dataclass(frozen=True)
class SignedStatusList:
    """A verified, decompressed status list; ``status`` is O(1)."""

    uri: str
    issuer: str
    version: int
    issued_at: int
    expires_at: int
    ttl: int
    bits: int
    size: int
    data: bytes = field(repr=False)

    def status(self, index: int) -> EntryStatus:
        """Status at ``index``; an index beyond the list, or a value other than VALID, INVALID and
        SUSPENDED (application-specific or reserved, draft §7.1), is INVALID: nothing vouches for the code."""
        if not 0 <= index < self.size:
            return EntryStatus.INVALID
        value = self.value(index)
        return EntryStatus(value) if value <= EntryStatus.SUSPENDED else EntryStatus.INVALID

    def value(self, index: int) -> int:
        """The raw status value at ``index`` (0 to 2**bits - 1). Raises: IndexError out of range."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        pos = index * self.bits
        return (self.data[pos >> 3] >> (pos & 7)) & ((1 << self.bits) - 1)

    def check_newer(self, held_version: int | None) -> None:
        """Raises: ListError (LIST_ROLLBACK) when older than ``held_version``."""
        if held_version is not None and self.version < held_version:
            raise ListError(Reason.LIST_ROLLBACK, f"version {self.version} < held {held_version}")

    @cached_property
    def digest(self) -> bytes:
        """``list_digest`` of the content, computed once."""
        return list_digest(self.bits, self.size, self.data)


def sign_status_list(
    lst: StatusList,
    key: SigningKey,
    *,
    uri: str,
    issuer: str,
    version: int,
    now: int,
    valid_for: int,
    ttl: int,
) -> bytes:
    """Sign ``lst`` as a Status List Token valid ``valid_for`` seconds; ``ttl`` says when to refetch.

    Raises:
        UsageError: version below 1, or non-positive durations.
    """
    if version < 1 or valid_for <= 0 or ttl <= 0:
        raise UsageError("version must be >= 1 and durations positive")
    claims = {
        int(Claim.ISS): issuer,
        int(Claim.SUB): uri,
        int(Claim.IAT): now,
        int(Claim.EXP): now + valid_for,
        int(Claim.TTL): ttl,
        int(Claim.STATUS_LIST): {STATUS_LIST_BITS: lst.bits, STATUS_LIST_LST: lst.compress()},
        int(Claim.SUISHENMA): {int(SmField.LIST_VERSION): version, int(SmField.LIST_SIZE): lst.size},
    }
    return _cose.sign(_cbor.dumps(claims), key, {Header.TYP: STATUS_LIST_TYP})


def parse_status_list(data: bytes, keys: Mapping[bytes, VerificationKey], *, now: int | None) -> SignedStatusList:
    """Verify a Status List Token signed by one of ``keys`` (its issuer's keys) at ``now``; with ``now`` None,
    its expiry is not checked (a verifier re-reading a held list whose content a newer signed timestamp
    vouches for, freshness.py).

    Decompression is capped at exactly the size the signed claims declare. The token must be a COSE_Sign1
    tagged 18 with typ ``application/statuslist+cwt``, a positive ttl and 1, 2, 4 or 8 bits per token
    (draft-ietf-oauth-status-list §4.3, §5.2).

    Raises:
        ListError: TOO_LARGE, LIST_MALFORMED, LIST_WRONG_SIGNER or LIST_EXPIRED.
    """
    if len(data) > MAX_STATUS_LIST_BYTES:
        raise ListError(Reason.TOO_LARGE, f"status list over {MAX_STATUS_LIST_BYTES} bytes")
    claims, _ = open_signed(data, keys, STATUS_LIST_TYP, max_items=64)
    body = get(claims, Claim.STATUS_LIST, dict)
    ours = get(claims, Claim.SUISHENMA, dict)
    bits = get(body, STATUS_LIST_BITS, int)
    size = get(ours, SmField.LIST_SIZE, int)
    if bits not in STATUS_LIST_BITS_ALLOWED or not 0 < size <= MAX_ENTRIES:
        raise ListError(Reason.LIST_MALFORMED, "bits must be 1, 2, 4 or 8, size within limits")
    expected = (size * bits + 7) // 8
    if expected > MAX_INFLATED_BYTES:
        raise ListError(Reason.TOO_LARGE, f"{size} entries of {bits} bits exceed {MAX_INFLATED_BYTES} bytes")
    ttl = get(claims, Claim.TTL, int)
    if ttl <= 0:
        raise ListError(Reason.LIST_MALFORMED, "ttl must be a positive number of seconds")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(get(body, STATUS_LIST_LST, bytes), expected)
    except zlib.error as exc:
        raise ListError(Reason.LIST_MALFORMED, f"bad zlib data: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof or len(raw) != expected:
        raise ListError(Reason.LIST_MALFORMED, "list does not decompress to its declared size")
    result = SignedStatusList(
        uri=get(claims, Claim.SUB, str),
        issuer=get(claims, Claim.ISS, str),
        version=get(ours, SmField.LIST_VERSION, int),
        issued_at=get(claims, Claim.IAT, int),
        expires_at=get(claims, Claim.EXP, int),
        ttl=ttl,
        bits=bits,
        size=size,
        data=raw,
    )
    if now is not None and result.expires_at <= now:
        raise ListError(Reason.LIST_EXPIRED, f"expired {now - result.expires_at} s ago")
    return result
