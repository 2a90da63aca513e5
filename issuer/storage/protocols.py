"""The storage interfaces, small and by concept, and ``Storage``, which is all of them.

Routes and the service see these, never a backend. Two backends implement them: ``sqlite.SQLiteStorage``,
the embedded default, and ``postgres.PostgresStorage`` for several workers and nodes; both share their SQL
in ``sql.SqlStorage`` and keep their schema migrations beside them. Every state change appends its audit
row in the same transaction, so a write and its audit entry land together or not at all. Names and ID
numbers are sealed by a ``FieldSealer`` before they are stored; records hold them opened.

Any method may also raise ``StorageUnavailable`` (the database is busy past its timeout, or away); the
docstrings name the other errors. Tools' own methods (re-sealing, ``db copy``, bulk loads) are the
backends' (``SqlStorage``), not part of these interfaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from issuer.audit_chain import AuditRow
from issuer.storage.records import (
    DEFAULT_CAPACITY,
    Anchoring,
    ApiKeyRecord,
    BatchResult,
    DeviceIssue,
    ImportMark,
    ListVersion,
    MintCount,
    OfflineCodeRecord,
    PublishedList,
    ScanLogResult,
    ScanRecord,
    SigningKeyRecord,
    StatusChange,
    StatusSnapshot,
    SubjectRecord,
)


class FieldSealer(Protocol):
    """Seals and opens private fields and hashes ID numbers for look-ups (``issuer.keys.sealing.Sealer``)."""

    def seal(self, text: str, column: str, subject: str) -> bytes:
        """Raises: SealError: no data key was opened."""
        ...

    def open(self, blob: bytes, column: str, subject: str) -> str:
        """Raises: SealError: not sealed by a key held here, moved from another row or column, or damaged."""
        ...

    def lookup(self, id_number: str) -> bytes:
        """The keyed hash of the normalised ID number. Raises: SealError: no data key was opened."""
        ...


class PeopleStore(Protocol):
    """People and their status: enrolment, look-ups, status changes one by one or in batches, import marks."""

    def subject_create(self, subject: str, name: str, id_number: str, now: int, actor: str) -> None:
        """Raises: AlreadyEnrolled when ``subject_by_id_number(id_number)`` finds someone; SealError."""
        ...

    def subject_get(self, subject: str) -> SubjectRecord | None: ...

    def subject_by_id_number(self, id_number: str) -> str | None:
        """The subject enrolled with this (normalised) ID number, or None. The one look-up of ID numbers,
        so that its form (today a keyed hash) can change behind it. Raises: SealError."""
        ...

    def subject_set_status(
        self, subject: str, status: str, reason: str, until: int | None, now: int, actor: str
    ) -> list[int]:
        """Set the status: a non-green one suspends the person's paper codes, green reinstates them; any
        change revokes every live credential of the person's phones, so credentials signed before it are
        refused once kiosks sync (the phone's next batch says the new status).

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
        import has come; it is stored in the same transaction. Raises: SealError (changes by ID number)."""
        ...

    def import_mark(self, digest: str) -> ImportMark | None: ...


class CodeStore(Protocol):
    """Paper codes and device credentials: their status-list entries (one index space) and its snapshot."""

    def offline_issue(
        self, subject: str, kid: str, expires_at: int, now: int, actor: str, capacity: int = DEFAULT_CAPACITY
    ) -> int:
        """Record a new paper code and return its status-list index (``draw_index``)."""
        ...

    def offline_get(self, index: int) -> OfflineCodeRecord | None: ...

    def offline_set_state(self, index: int, state: int, now: int, actor: str) -> bool:
        """Move a paper code to ``state``; False when it already was there (not audited again).

        Raises: NotFound; Conflict when reinstating or suspending a revoked code (revocation is final).
        """
        ...

    def device_batch(self, issue: DeviceIssue, max_devices: int, capacity: int = DEFAULT_CAPACITY) -> list[int]:
        """Register the phone on first use and give each slot of the batch its own status-list index, drawn at
        random among the free ones (``draw_index``), recording and auditing the issuance in one transaction.

        Raises: DeviceRevoked; DeviceLimit when a new phone would pass ``max_devices`` active ones.
        """
        ...

    def device_revoke(self, index: int, now: int, actor: str) -> bool:
        """Revoke, for good, the phone whose live credential holds status-list ``index`` (a lost phone), and
        every live credential of it. False when it was revoked already. Raises: NotFound (no live
        credential holds the index: it may have been reused since)."""
        ...

    def status_top_index(self) -> int:
        """The highest status-list index handed out (0 when none): cheap, unlike ``status_snapshot``."""
        ...

    def status_snapshot(self, name: str) -> StatusSnapshot:
        """Status-list entries of paper codes and devices alike (they share the index space), read in one
        snapshot with the count of changes the held list ``name`` does not show yet."""
        ...


class ListStore(Protocol):
    """Published lists (the trust list, status lists): their signed bodies and pending changes."""

    def list_get(self, name: str) -> PublishedList | None: ...

    def list_state(self, name: str) -> tuple[int, int] | None:
        """(version, pending changes) of a published list, without its body; None when none is held."""
        ...

    def list_put(
        self, lst: PublishedList, actor: str, changes_seen: int = 0, version: ListVersion | None = None
    ) -> None:
        """Store a newly signed list; ``changes_seen`` pending changes (from its snapshot) are now published.
        A status list comes with its ``version`` record (digest and delta), stored in the same transaction.

        Raises: Conflict when the held version is not lower (another worker published first).
        """
        ...

    def list_versions(self, name: str, first: int, last: int) -> list[ListVersion]:
        """The version records of ``name`` from ``first`` to ``last``, in order (those still kept)."""
        ...

    def list_versions_prune(self, name: str, before: int) -> int:
        """Drop the version records of ``name`` issued before ``before``, keeping the newest; return how many."""
        ...


class KeyStore(Protocol):
    """API keys, signing keys, and what workers and nodes share: rate buckets, leases, mint counts."""

    def api_key_create(
        self, name: str, key_hash: bytes, scopes: Sequence[str], rate_per_s: float, now: int, actor: str
    ) -> int:
        """Store a key (its hash only) and return its id. Raises: Conflict: a key of that name exists."""
        ...

    def api_key_by_hash(self, key_hash: bytes) -> ApiKeyRecord | None: ...

    def api_key_revoke(self, name: str, now: int, actor: str) -> bool:
        """Revoke a key by name; False when it was already revoked. Raises: NotFound."""
        ...

    def api_keys(self) -> list[ApiKeyRecord]: ...

    def signing_keys(self) -> list[SigningKeyRecord]: ...

    def signing_key_add(self, kid: str, alg: str, path: str, now: int, actor: str) -> None: ...

    def signing_key_rotate(self, old_kid: str, kid: str, alg: str, path: str, now: int, actor: str) -> None:
        """Record ``kid`` and retire ``old_kid`` in one transaction.

        Raises: Conflict when ``old_kid`` is no longer the current key (another rotation came first).
        """
        ...

    def signing_key_extend(self, kid: str, expires_at: int) -> None:
        """Keep ``kid`` listed in the trust list until at least ``expires_at`` (its newest code's expiry). The
        stored bound moves in steps of ten minutes, so busy minting writes about once per step."""
        ...

    def rate_take(self, key_id: int, rate: float, burst: float, want: float, now: float) -> tuple[float, float]:
        """Take up to ``want`` whole tokens from the API key's shared bucket (refilled at ``rate`` per second,
        holding at most ``burst``); return (tokens granted, tokens left in the bucket)."""
        ...

    def lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Hold the named lease for ``ttl`` seconds: True when ``holder`` has it (it was free, expired, or
        its own already), False while another holder's lease runs."""
        ...

    def mint_counts_add(self, counts: Sequence[MintCount]) -> None:
        """Add to the per-minute mint counters (not audited: minting changes no state)."""
        ...

    def mint_counts(self, since: int = 0) -> list[MintCount]: ...


class AuditStore(Protocol):
    """The hash-chained audit log (its rows, head and high-water mark) and the kiosks' scan logs."""

    def audit_event(self, action: str, target: str, detail: dict[str, object], now: int, actor: str) -> None:
        """Append one event that goes with no stored change (the data key rotated, say)."""
        ...

    def audit_events(self, events: Sequence[tuple[str, str, dict[str, object]]], now: int, actor: str) -> None:
        """Append several (action, target, detail) events in one transaction."""
        ...

    def subjects_exist(self, subjects: Sequence[str]) -> set[str]:
        """Which of ``subjects`` are enrolled (nothing sealed is opened)."""
        ...

    def audit_rows(self) -> Iterator[AuditRow]:
        """Every audit row in id order, read in chunks so memory stays flat on long logs."""
        ...

    def audit_high_water(self) -> int:
        """The highest audit row id ever handed out: rows deleted from the end leave it behind."""
        ...

    def audit_head(self) -> tuple[int, str]:
        """(id, hash) of the newest audit row; (0, GENESIS) for an empty log."""
        ...

    def audit_hash_at(self, row_id: int) -> str | None:
        """The hash stored in row ``row_id``, or None when there is no such row."""
        ...

    def anchoring(self, issuer: str) -> Anchoring:
        """One consistent look at the log's head and ``issuer``'s checkpoint, for monitoring.

        Raises: StorageUnavailable (or the driver's error) when the database cannot be read.
        """
        ...

    def checkpoint_get(self, issuer: str) -> bytes | None:
        """The newest signed audit checkpoint stored for every node to serve (as signed), or None."""
        ...

    def checkpoint_put(self, issuer: str, seq: int, body: bytes, issued_at: int) -> bool:
        """Store a signed checkpoint of row ``seq``; False (nothing stored) when one of a later row is held."""
        ...

    def scan_logs_add(self, kiosk_id: str, records: Sequence[ScanRecord], now: int) -> ScanLogResult:
        """Store the records not yet held. A record whose (kiosk, seq) is held with the same content is a
        duplicate (a resend); with other content it is a conflict: reported, never stored or overwritten."""
        ...

    def scan_log_subjects(self, kiosk_id: str) -> list[str]:
        """The distinct subjects (pseudonyms, for codes of the current forms) a kiosk's uploaded log holds."""
        ...

    def scan_log_count(self) -> int: ...


class Storage(PeopleStore, CodeStore, ListStore, KeyStore, AuditStore, Protocol):
    """Everything the service stores, and the storage's lifecycle."""

    def close(self) -> None:
        """Release the connections (and stop any background work); the storage is not used afterwards."""
        ...
