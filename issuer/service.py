"""What the issuer does, independent of HTTP: enrol, set status, mint, paper codes, scan logs.

Routes and the CLI call this; it talks to ``Storage`` and the signing key and never reads the clock
(every method takes ``now``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from issuer.errors import Conflict, InputError, NotFound, Problem, StatusExpired
from issuer.keys.checkpoints import Anchor
from issuer.keys.pseudonym_keys import PSEUDONYM_KEY_FILE, PseudonymKeys, load_pseudonym_keys, pseudonym_key_path
from issuer.keys.signing_keys import ActiveKey, active_record, load_active_key, passphrase_for_new_keys
from issuer.lists.freshness import Freshness
from issuer.lists.publisher import Publisher
from issuer.mint_meter import MintMeter
from issuer.settings import DAY, Settings
from issuer.signing_times import DEVICE_CREDENTIAL, DYNAMIC, OFFLINE, timed
from issuer.storage import (
    REVOKED,
    SUSPENDED,
    VALID,
    BatchResult,
    DeviceIssue,
    ImportMark,
    ScanLogResult,
    ScanRecord,
    StatusChange,
    Storage,
    SubjectRecord,
)
from issuer.tracing import Resolution, trace
from suishenma import (
    DYNAMIC_TTL,
    Claims,
    DeviceKey,
    Status,
    UsageError,
    credential_text,
    mint,
    mint_credential,
    passphrase_from_env,
)
from suishenma.masking import mask_id_number, mask_name

Scenario = Literal["venue", "hospital", "transit"]
OfflineAction = Literal["revoke", "suspend", "reinstate"]
STATE_OF: dict[str, int] = {"revoke": REVOKED, "suspend": SUSPENDED, "reinstate": VALID}

KEY_RECHECK_S = 2.0
log = logging.getLogger(__name__)

__all__ = ["DeviceBatch", "IssuerService", "MintedCode", "OfflineAction", "Scenario", "SlotCredential"]


@dataclass(frozen=True)
class MintedCode:
    code: str
    expires_at: int
    status: str
    masked_name: str
    status_index: int | None = None


@dataclass(frozen=True)
class SlotCredential:
    """One credential of a phone's batch: valid from ``valid_from`` until ``expires_at``."""

    credential: str  # base64url, as the phone keeps it
    valid_from: int
    expires_at: int
    status_index: int


@dataclass(frozen=True)
class DeviceBatch:
    credentials: list[SlotCredential]
    status: str
    masked_name: str


class IssuerService:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.publisher = Publisher(settings, storage)
        self.freshness = Freshness(settings, storage, self.publisher, lambda: self.key.key)
        self.anchor = Anchor(settings, storage, lambda: self.key.key)
        self.mints = MintMeter(storage)
        self._key: ActiveKey | None = None
        self._key_checked = 0.0
        self._pseudonyms: PseudonymKeys | None = None

    @property
    def key(self) -> ActiveKey:
        """The current signing key. A rotation (``keys rotate``, another process) is picked up within
        ``KEY_RECHECK_S`` seconds; the retired key stays valid that long and more (signing_keys.SKEW).

        Raises:
            NoSigningKey, KeyFileError.
        """
        mono = time.monotonic()
        if self._key is None or mono - self._key_checked > KEY_RECHECK_S:
            if self._key is None or active_record(self.storage).kid != self._key.record.kid:
                self._key = load_active_key(self.settings, self.storage)
            self._key_checked = mono  # only once the database answered: until then every call asks again
        return self._key

    def enrol(self, name: str, id_number: str, now: int, actor: str) -> str:
        """Store a person under a fresh random pseudonym and return it (16 hex digits).

        Raises:
            UsageError: name or ID number cannot be masked (empty, too long, bad characters).
            AlreadyEnrolled: the ID number is enrolled already.
        """
        mask_name(name), mask_id_number(id_number)  # validate before storing
        subject = secrets.token_hex(8)
        self.storage.subject_create(subject, name.strip(), id_number.strip().upper(), now, actor)
        return subject

    def subject(self, subject: str) -> SubjectRecord:
        """Raises: NotFound."""
        rec = self.storage.subject_get(subject)
        if rec is None:
            raise NotFound(Problem.NO_SUBJECT, subject=subject)
        return rec

    def set_status(self, subject: str, status: str, reason: str, until: int | None, now: int, actor: str) -> list[int]:
        """Raises: NotFound; Conflict when ``until`` is in the past."""
        if until is not None and until <= now:
            raise Conflict(Problem.VALID_UNTIL_PAST)
        return self.storage.subject_set_status(subject, status, reason, until, now, actor)

    def set_statuses(
        self,
        changes: list[StatusChange],
        now: int,
        actor: str,
        *,
        all_or_none: bool = True,
        mark: Callable[[BatchResult], ImportMark] | None = None,
    ) -> BatchResult:
        """A batch of status changes in one transaction (status lists are rebuilt once, on their next
        request). Changes naming an unknown person are listed in the result; with ``all_or_none`` (the
        HTTP batch) one of them applies nothing, otherwise (``status import``) the others apply.

        Raises: Conflict when a ``valid_until`` is not in the future (nothing applied).
        """
        late = [pos for pos, ch in enumerate(changes) if ch.until is not None and ch.until <= now]
        if late:
            raise Conflict(Problem.VALID_UNTIL_PAST_IN_BATCH, changes=late[:10])
        return self.storage.subject_set_status_many(changes, now, actor, all_or_none=all_or_none, mark=mark)

    def _current(self, subject: str, now: int) -> SubjectRecord:
        rec = self.subject(subject)
        if rec.status_until is not None and rec.status_until <= now:
            raise StatusExpired(subject, rec.status_until)
        return rec

    def pseudonym_keys(self, now: int, *, create: bool = True) -> PseudonymKeys:
        """The pseudonym keys; with ``create``, ``keys/pseudonym.key`` is made on first use when missing (an
        issuer folder from before pseudonyms), audited, encrypted when the keys beside it are.

        Raises:
            SealError: the file is unreadable or damaged, or its passphrase is missing or wrong; or it is
                missing and ``create`` is false.
            KeysEncrypted: a new file would be the only plaintext key in an encrypted folder.
        """
        if self._pseudonyms is None:
            keys_dir = self.settings.keys_path
            if pseudonym_key_path(keys_dir).exists() or not create:
                self._pseudonyms = load_pseudonym_keys(keys_dir, passphrase_from_env())
            else:
                self._pseudonyms = load_pseudonym_keys(keys_dir, passphrase_for_new_keys(self.settings), create=True)
                kid = self._pseudonyms.current.kid
                self.storage.audit_event("pseudonym_key.create", kid, {"file": PSEUDONYM_KEY_FILE}, now, "issuer")
        return self._pseudonyms

    def _pseudonym(self, subject: str, now: int) -> bytes:
        return self.pseudonym_keys(now).current.pseudonym(bytes.fromhex(subject))

    def mint_dynamic(self, subject: str, scenario: Scenario, now: int, actor: str) -> MintedCode:
        """A phone code valid ``DYNAMIC_TTL`` seconds under a pseudonym of its own. In its status's last minute
        the code is dated earlier so that it ends with the status (its expiry is implied: iat + 60). Hospital
        codes carry the masked name and ID; venue and transit codes neither.

        Minting changes no state, so it writes nothing while the client waits: it is counted in memory
        (``MintMeter``, written every second). The one write is rare: the signing key's last expiry is
        raised in steps of ten minutes, before the code is returned, so that a retired key stays in the
        trust list until its last code has expired.

        Raises:
            NotFound, StatusExpired, NoSigningKey, KeyFileError, StorageUnavailable, SealError.
        """
        rec = self._current(subject, now)
        issued_at = now if rec.status_until is None else min(now, rec.status_until - DYNAMIC_TTL)
        identity = scenario == "hospital"
        claims = Claims.dynamic(
            self._pseudonym(subject, now),
            Status[rec.status.upper()],
            issued_at,
            issuer=self.settings.issuer_id,
            name=rec.name if identity else None,
            id_number=rec.id_number if identity else None,
        )
        active = self.key
        kid = active.record.kid
        with timed(DYNAMIC):
            code = mint(claims, active.key)
        self.storage.signing_key_extend(kid, claims.expires_at)
        self.mints.add(actor, now, kid, scenario)
        return MintedCode(code, claims.expires_at, rec.status, rec.masked_name)

    def issue_offline(self, subject: str, now: int, actor: str) -> MintedCode:
        """A printed code with masked identity, a pseudonym of its own and a status-list index drawn at random.

        Raises:
            NotFound, Conflict (only green people get paper codes), StatusExpired, NoSigningKey, KeyFileError.
        """
        rec = self._current(subject, now)
        if rec.status != "green":
            raise Conflict(Problem.PAPER_CODE_NOT_GREEN, subject=subject)
        active = self.key
        expires_at = now + self.settings.offline_ttl
        index = self.storage.offline_issue(
            subject, active.record.kid, expires_at, now, actor, self.settings.status_list_capacity
        )
        claims = Claims.offline(
            self._pseudonym(subject, now),
            Status.GREEN,
            now,
            index,
            ttl=self.settings.offline_ttl,
            issuer=self.settings.issuer_id,
            name=rec.name,
            id_number=rec.id_number,
        )
        with timed(OFFLINE):
            code = mint(claims, active.key)
        return MintedCode(code, expires_at, rec.status, rec.masked_name, index)

    def issue_device_batch(
        self,
        subject: str,
        phone: dict[str, object],
        keys: list[dict[str, object]],
        now: int,
        actor: str,
        *,
        start: int | None = None,
        identity: bool = False,
    ) -> DeviceBatch:
        """A batch of credentials for the phone whose own key is ``phone``: one per slot of ``Settings.slot``
        seconds, from the slot that holds ``start`` (default: now) on, each bound to one of ``keys`` (a key
        the phone made for that slot alone) under its own pseudonym and its own status-list index. The issuer
        signs each slot as the credential's validity, so a batch cannot be spent at once. Only slots that end
        within the status's validity are issued; the phone asks for the slots it lacks (``start``). Audited.

        Raises:
            UsageError: a key is not a usable public JWK, two keys are the same, or more keys than the batch.
            InputError: ``start`` is not within the coming day.
            Conflict: the status ends before the first slot does (``status_ends_in_slot``).
            NotFound, StatusExpired, DeviceRevoked, DeviceLimit, NoSigningKey, KeyFileError, SealError.
        """
        device = DeviceKey.from_jwk(phone)
        bound = [DeviceKey.from_jwk(k) for k in keys]
        if not 1 <= len(bound) <= self.settings.device_batch:
            raise UsageError(f"give 1 to {self.settings.device_batch} keys, one per slot")
        if len({k.thumbprint() for k in bound}) != len(bound):
            raise UsageError("each slot needs a key of its own: two keys are the same")
        slot = self.settings.slot
        first = now - now % slot
        if start is not None:
            if not now - slot < start <= now + DAY:
                raise InputError(Problem.BATCH_START_OUT_OF_RANGE, start=start, now=now)
            first = start - start % slot
        rec = self._current(subject, now)
        slots = [(first + i * slot, first + (i + 1) * slot) for i in range(len(bound))]
        if rec.status_until is not None:
            slots = [(a, b) for a, b in slots if b <= rec.status_until]
        if not slots:
            raise Conflict(Problem.STATUS_ENDS_IN_SLOT, subject=subject, until=rec.status_until)
        active = self.key
        issue = DeviceIssue(subject, device.thumbprint(), device.alg.name, active.record.kid, tuple(slots), now, actor)
        indices = self.storage.device_batch(issue, self.settings.max_devices, self.settings.status_list_capacity)
        credentials = []
        for (begins, ends), index, key in zip(slots, indices, bound, strict=False):
            claims = Claims.device(
                self._pseudonym(subject, now),
                Status[rec.status.upper()],
                begins,
                index,
                key,
                slot=slot,
                issuer=self.settings.issuer_id,
                name=rec.name if identity else None,
                id_number=rec.id_number if identity else None,
            )
            with timed(DEVICE_CREDENTIAL):
                signed = mint_credential(claims, active.key)
            text = credential_text(signed)
            credentials.append(SlotCredential(text, begins, ends, index))
        return DeviceBatch(credentials, rec.status, rec.masked_name)

    def trace(self, pseudonyms: list[str], reason: str, now: int, actor: str) -> list[Resolution]:
        """The people behind pseudonyms from scan logs, each look-up audited with ``reason`` (tracing.py).

        Raises:
            InputError: no reason, too many, or a malformed pseudonym (nothing resolved or audited).
            SealError: the pseudonym keys cannot be opened.
        """
        return trace(self.storage, self.pseudonym_keys(now, create=False), pseudonyms, reason, now, actor)

    def revoke_device(self, index: int, now: int, actor: str) -> bool:
        """Revoke a lost phone by any status-list index its credentials carried; False when already revoked.

        Raises: NotFound.
        """
        return self.storage.device_revoke(index, now, actor)

    def set_offline(self, index: int, action: OfflineAction, now: int, actor: str) -> bool:
        """Revoke, suspend or reinstate a paper code; False when nothing changed (idempotent).

        Raises: NotFound; Conflict for a revoked code.
        """
        return self.storage.offline_set_state(index, STATE_OF[action], now, actor)

    def receive_scan_logs(self, kiosk_id: str, records: list[ScanRecord], now: int) -> ScanLogResult:
        """Store a kiosk's batch: records already held (same kiosk and seq) with the same content are
        duplicates; with other content, conflicts (kept out, and reported so the kiosk keeps them)."""
        result = self.storage.scan_logs_add(kiosk_id, records, now)
        if result.conflicts:
            log.warning("kiosk %s sent %d records that contradict stored ones", kiosk_id, len(result.conflicts))
        return result
