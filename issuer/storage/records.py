"""The records storage returns and takes, its status-list states, and the one form ID numbers are kept in.

Frozen dataclasses, with no behaviour beyond opening a person's sealed fields on demand; every backend
returns these, so nothing above storage sees a database row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

# Offline-code states; the values are the status list's 2-bit entries (valid / revoked / suspended).
VALID, REVOKED, SUSPENDED = 0, 1, 2


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    name: str
    scopes: frozenset[str]
    rate_per_s: float
    revoked: bool


@dataclass(frozen=True)
class SubjectRecord:
    """A person. The masked forms are stored as such; the full name and ID number are opened from their
    sealed values only when read (``name``, ``id_number``), so the busiest path (a venue code) opens none.

    Reading ``name`` or ``id_number`` raises SealError when the data key cannot open them.
    """

    subject: str
    status: str
    status_reason: str
    status_until: int | None
    created_at: int
    masked_name: str
    masked_id: str
    opener: Callable[[], tuple[str, str]] = field(repr=False, compare=False)

    @cached_property
    def _identity(self) -> tuple[str, str]:
        return self.opener()

    @property
    def name(self) -> str:
        return self._identity[0]

    @property
    def id_number(self) -> str:
        return self._identity[1]


@dataclass(frozen=True)
class SigningKeyRecord:
    kid: str
    alg: str
    path: str
    created_at: int
    retired_at: int | None
    last_expiry: int


@dataclass(frozen=True)
class OfflineCodeRecord:
    index: int
    subject: str
    kid: str
    issued_at: int
    expires_at: int
    state: int


@dataclass(frozen=True)
class PublishedList:
    name: str
    version: int
    body: bytes
    etag: str
    issued_at: int
    expires_at: int
    pending: int  # state changes not yet in ``body``
    size: int = 0  # entries, for status lists


@dataclass(frozen=True)
class ListVersion:
    """A published status-list version: its content's digest and the delta from the version before it."""

    name: str
    version: int
    digest: bytes  # freshness.list_digest of its content
    size: int
    issued_at: int
    delta: bytes | None  # statusdelta wire form from version - 1; None when that content was not at hand


@dataclass(frozen=True)
class MintCount:
    """How many dynamic codes one API key minted in one minute, with one signing key, for one scenario."""

    actor: str
    minute: int  # Unix time of the minute's start
    kid: str
    scenario: str
    count: int


@dataclass(frozen=True)
class StatusChange:
    """One status change of a batch, naming the person by subject or by ID number (exactly one)."""

    status: str
    reason: str
    until: int | None = None
    subject: str | None = None
    id_number: str | None = None


@dataclass(frozen=True)
class ImportMark:
    """How far a ``status import`` of one file (by its SHA-256) has come: stored with each batch it applies,
    in the same transaction, so a resumed import neither skips nor repeats a line."""

    digest: str
    line: int  # lines of the file consumed, header included
    applied: int  # changes applied so far
    failed: int  # rows refused so far


@dataclass(frozen=True)
class BatchResult:
    """What a batch of status changes did: ``applied`` changes stored, and for each refused one its
    position in the batch and the reason (``unknown_subject``, ``unknown_id_number``)."""

    applied: int
    failed: list[tuple[int, str]]


@dataclass(frozen=True)
class StatusSnapshot:
    nonvalid: list[tuple[int, int]]  # (index, state) of every revoked or suspended paper code
    max_index: int
    pending: int  # changes since the held list was signed


DEFAULT_CAPACITY = 1 << 20  # a status list's first size; it doubles as needed (Settings.status_list_capacity)
# An index is drawn again only this long after the last credential that held it expired: a kiosk whose
# clock runs behind must not see a new holder's entry for an old credential it still accepts.
REUSE_AFTER_S = 3600


@dataclass(frozen=True)
class DeviceIssue:
    """What the issuer records when it signs a phone's batch of credentials (never the credentials): one
    status-list entry per slot, each valid from its start to its end."""

    subject: str
    thumbprint: str  # RFC 7638 thumbprint of the phone's own key (it identifies the phone to the issuer only)
    alg: str
    kid: str  # the issuer key that signs them
    slots: tuple[tuple[int, int], ...]  # (start, end) of each credential
    at: int
    actor: str


@dataclass(frozen=True)
class ScanRecord:
    seq: int
    at: int
    scenario: str
    decision: str
    reason: str
    subject: str | None
    issuer: str | None


@dataclass(frozen=True)
class ScanLogResult:
    """What became of a batch: ``accepted`` new records stored, ``duplicates`` already held with the same
    content, and the seqs of records held with different content (one entry per such record)."""

    accepted: int
    duplicates: int
    conflicts: list[int]


@dataclass(frozen=True)
class Anchoring:
    """How far the audit log runs ahead of its newest checkpoint (for monitoring: read as stored, not verified;
    ``audit verify`` is the integrity check). The log's last row ``head_seq``; the newest checkpoint's row
    ``checkpoint_seq`` (0 without one) and its time (None without one); the time of the first row after it
    (None when every row is covered)."""

    head_seq: int
    checkpoint_seq: int
    checkpoint_at: int | None
    oldest_unanchored_at: int | None

    @property
    def unanchored_rows(self) -> int:
        # Row ids are consecutive (reserved in the transaction that writes them), so a difference counts rows.
        return max(self.head_seq - self.checkpoint_seq, 0)

    def lag(self, now: int) -> int:
        """Seconds since the oldest row no checkpoint covers was written; 0 when every row is covered."""
        if self.oldest_unanchored_at is None:
            return 0
        return max(now - self.oldest_unanchored_at, 0)  # another node's clock may run ahead of ours


def normalise_id_number(id_number: str) -> str:
    """The form an ID number is hashed and stored in: no surrounding spaces, upper case (the check 'X')."""
    return id_number.strip().upper()
