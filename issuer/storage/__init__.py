"""The narrow storage interface the service needs, and the records it returns.

Routes and the service only see ``Storage``. Two backends implement it: ``sqlite.SQLiteStorage``, the
embedded default, and ``postgres.PostgresStorage`` for several workers and nodes; both share their SQL in
``sql.SqlStorage`` and keep their schema migrations beside them. ``open_storage`` picks one from the
settings. Every state change appends its audit row in the same transaction, so a write and its audit
entry land together or not at all. Names and ID numbers are sealed (``issuer.sealing``) before they are
stored; records hold them opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from ..audit import AuditRow

# Offline-code states; the values are the status list's 2-bit entries (valid / revoked / suspended).
VALID, REVOKED, SUSPENDED = 0, 1, 2


class NotFound(LookupError):
    """The subject, offline code or key does not exist. ``message_zh`` says it in Chinese, when given."""

    def __init__(self, message: str, zh: str = "") -> None:
        super().__init__(message)
        self.message_en, self.message_zh = message, zh


class Conflict(Exception):
    """The request contradicts the stored state (e.g. reinstating a revoked code). ``message_zh`` says it in
    Chinese, when given."""

    def __init__(self, message: str, zh: str = "") -> None:
        super().__init__(message)
        self.message_en, self.message_zh = message, zh


class StorageUnavailable(RuntimeError):
    """The database cannot be reached or did not answer in time; nothing was changed. ``message_zh`` says it
    in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message_en, self.message_zh = message, f"数据库暂时不可用（{message}），请稍后重试"


class DeviceLimit(Conflict):
    """The person has as many active devices as allowed: one must be revoked first."""


class DeviceRevoked(Conflict):
    """This device key was revoked (a lost phone): it never gets a credential again."""


class AlreadyEnrolled(Conflict):
    """The ID number belongs to a person enrolled before; the message never names the number or subject."""


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


@dataclass(frozen=True)
class DeviceIssue:
    """What the issuer records when it signs a device credential (never the credential itself)."""

    subject: str
    thumbprint: str  # RFC 7638 thumbprint of the device's public key
    alg: str
    kid: str  # the issuer key that signs it
    expires_at: int
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


class Storage(Protocol):
    def close(self) -> None: ...

    # API keys
    def api_key_create(
        self, name: str, key_hash: bytes, scopes: Sequence[str], rate_per_s: float, now: int, actor: str
    ) -> int: ...
    def api_key_by_hash(self, key_hash: bytes) -> ApiKeyRecord | None: ...
    def api_key_revoke(self, name: str, now: int, actor: str) -> bool: ...
    def api_keys(self) -> list[ApiKeyRecord]: ...

    # subjects
    def subject_create(self, subject: str, name: str, id_number: str, now: int, actor: str) -> None:
        """Raises: AlreadyEnrolled when ``subject_by_id_number(id_number)`` finds someone."""
        ...

    def subject_get(self, subject: str) -> SubjectRecord | None: ...
    def subject_by_id_number(self, id_number: str) -> str | None:
        """The subject enrolled with this (normalised) ID number, or None. The one look-up of ID numbers,
        so that its form (today the stored number, later a keyed hash) can change behind it."""
        ...

    def subject_set_status(
        self, subject: str, status: str, reason: str, until: int | None, now: int, actor: str
    ) -> list[int]:
        """Set the status: a non-green one suspends the person's paper codes, green reinstates them; any
        change revokes the current indices of the person's devices, so credentials signed before it are
        refused once kiosks sync (each device gets a new index with its next credential).

        Returns the paper-code indices whose state changed. Raises: NotFound.
        """
        ...

    def subject_set_status_many(
        self,
        changes: Sequence[StatusChange],
        now: int,
        actor: str,
        *,
        all_or_none: bool,
        mark: Callable[[BatchResult], ImportMark] | None = None,
    ) -> BatchResult:
        """Apply a batch of status changes in one transaction, each audited as ``subject_set_status`` would.
        Changes naming an unknown subject or ID number are refused; with ``all_or_none`` one refusal
        applies nothing, otherwise the others apply. ``mark``, given the batch's outcome, says how far an
        import has come; it is stored in the same transaction."""
        ...

    def import_mark(self, digest: str) -> ImportMark | None: ...

    # minting
    def signing_key_extend(self, kid: str, expires_at: int) -> None:
        """Keep ``kid`` listed in the trust list until at least ``expires_at`` (its newest code's expiry). The
        stored bound moves in steps of ten minutes, so busy minting writes about once per step."""
        ...

    def mint_counts_add(self, counts: Sequence[MintCount]) -> None:
        """Add to the per-minute mint counters (not audited: minting changes no state)."""
        ...

    def mint_counts(self, since: int = 0) -> list[MintCount]: ...
    def offline_issue(self, subject: str, kid: str, expires_at: int, now: int, actor: str) -> int: ...
    def offline_get(self, index: int) -> OfflineCodeRecord | None: ...
    def offline_set_state(self, index: int, state: int, now: int, actor: str) -> bool: ...
    def status_top_index(self) -> int:
        """The highest status-list index handed out (0 when none): cheap, unlike ``status_snapshot``."""
        ...

    def status_snapshot(self, name: str) -> StatusSnapshot:
        """Status-list entries of paper codes and devices alike (they share the index space)."""
        ...

    # devices (device-bound codes)
    def device_credential(self, issue: DeviceIssue, max_devices: int) -> int:
        """Register the device on first use and return its current status-list index (allocating one when
        it has none), recording and auditing the issuance.

        Raises: DeviceRevoked; DeviceLimit when a new device would pass ``max_devices`` active ones.
        """
        ...

    def device_revoke(self, index: int, now: int, actor: str) -> bool:
        """Revoke, for good, the device that holds or held status-list ``index`` (a lost phone), and its
        current index. False when it was revoked already. Raises: NotFound."""
        ...

    # signing keys
    def signing_keys(self) -> list[SigningKeyRecord]: ...
    def signing_key_add(self, kid: str, alg: str, path: str, now: int, actor: str) -> None: ...
    def signing_key_rotate(self, old_kid: str, kid: str, alg: str, path: str, now: int, actor: str) -> None:
        """Record ``kid`` and retire ``old_kid`` in one transaction.

        Raises: Conflict when ``old_kid`` is no longer the current key (another rotation came first).
        """
        ...

    # published lists
    def list_get(self, name: str) -> PublishedList | None: ...
    def list_state(self, name: str) -> tuple[int, int] | None:
        """(version, pending changes) of a published list, without its body; None when none is held."""
        ...

    def list_put(self, lst: PublishedList, actor: str, changes_seen: int = 0) -> None: ...

    # coordination between workers and nodes
    def rate_take(self, key_id: int, rate: float, burst: float, want: float, now: float) -> tuple[float, float]:
        """Take up to ``want`` whole tokens from the API key's shared bucket (refilled at ``rate`` per second,
        holding at most ``burst``); return (tokens granted, tokens left in the bucket)."""
        ...

    def lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Hold the named lease for ``ttl`` seconds: True when ``holder`` has it (it was free, expired, or
        its own already), False while another holder's lease runs."""
        ...

    # kiosk scan logs
    def scan_logs_add(self, kiosk_id: str, records: Sequence[ScanRecord], now: int) -> ScanLogResult: ...
    def scan_log_count(self) -> int: ...

    # audit
    def audit_event(self, action: str, target: str, detail: dict[str, object], now: int, actor: str) -> None: ...
    def audit_rows(self) -> Iterator[AuditRow]: ...
    def audit_high_water(self) -> int: ...
    def audit_head(self) -> tuple[int, str]:
        """(id, hash) of the newest audit row; (0, GENESIS) for an empty log."""
        ...

    def audit_hash_at(self, row_id: int) -> str | None:
        """The hash stored in row ``row_id``, or None when there is no such row."""
        ...
