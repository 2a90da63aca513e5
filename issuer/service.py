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

from issuer.errors import Conflict, NotFound, Problem, StatusExpired
from issuer.keys.checkpoints import Anchor
from issuer.keys.signing_keys import ActiveKey, active_record, load_active_key
from issuer.lists.publisher import Publisher
from issuer.mint_meter import MintMeter
from issuer.settings import Settings
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
from suishenma import Claims, DeviceKey, Status, credential_text, mint, mint_credential
from suishenma.masking import mask_id_number, mask_name

Scenario = Literal["venue", "hospital", "transit"]
OfflineAction = Literal["revoke", "suspend", "reinstate"]
STATE_OF: dict[str, int] = {"revoke": REVOKED, "suspend": SUSPENDED, "reinstate": VALID}

KEY_RECHECK_S = 2.0
log = logging.getLogger(__name__)

__all__ = ["IssuerService", "MintedCode", "OfflineAction", "Scenario"]


@dataclass(frozen=True)
class MintedCode:
    code: str
    expires_at: int
    status: str
    masked_name: str
    status_index: int | None = None


class IssuerService:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.publisher = Publisher(settings, storage)
        self.anchor = Anchor(settings, storage, lambda: self.key.key)
        self.mints = MintMeter(storage)
        self._key: ActiveKey | None = None
        self._key_checked = 0.0

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

    def mint_dynamic(self, subject: str, scenario: Scenario, now: int, actor: str) -> MintedCode:
        """A phone code valid ``dynamic_ttl`` seconds (never past the status's own validity). Hospital codes
        carry the masked name and ID; venue and transit codes neither.

        Minting changes no state, so it writes nothing while the client waits: it is counted in memory
        (``MintMeter``, written every second). The one write is rare: the signing key's last expiry is
        raised in steps of ten minutes, before the code is returned, so that a retired key stays in the
        trust list until its last code has expired.

        Raises:
            NotFound, StatusExpired, NoSigningKey, KeyFileError, StorageUnavailable.
        """
        rec = self._current(subject, now)
        ttl = self.settings.dynamic_ttl
        if rec.status_until is not None:
            ttl = min(ttl, rec.status_until - now)
        identity = scenario == "hospital"
        claims = Claims.dynamic(
            bytes.fromhex(subject),
            Status[rec.status.upper()],
            now,
            ttl=ttl,
            issuer=self.settings.issuer_id,
            name=rec.name if identity else None,
            id_number=rec.id_number if identity else None,
        )
        active = self.key
        kid = active.record.kid
        code = mint(claims, active.key)
        self.storage.signing_key_extend(kid, claims.expires_at)
        self.mints.add(actor, now, kid, scenario)
        return MintedCode(code, claims.expires_at, rec.status, rec.masked_name)

    def issue_offline(self, subject: str, now: int, actor: str) -> MintedCode:
        """A printed code with masked identity and a fresh status-list index.

        Raises:
            NotFound, Conflict (only green people get paper codes), StatusExpired, NoSigningKey, KeyFileError.
        """
        rec = self._current(subject, now)
        if rec.status != "green":
            raise Conflict(Problem.PAPER_CODE_NOT_GREEN, subject=subject)
        active = self.key
        expires_at = now + self.settings.offline_ttl
        index = self.storage.offline_issue(subject, active.record.kid, expires_at, now, actor)
        claims = Claims.offline(
            bytes.fromhex(subject),
            Status.GREEN,
            now,
            index,
            ttl=self.settings.offline_ttl,
            issuer=self.settings.issuer_id,
            name=rec.name,
            id_number=rec.id_number,
        )
        return MintedCode(mint(claims, active.key), expires_at, rec.status, rec.masked_name, index)

    def issue_device_credential(
        self, subject: str, jwk: dict[str, object], now: int, actor: str, *, identity: bool = False
    ) -> MintedCode:
        """A device credential for the phone whose public key is ``jwk``: its status, a status-list index
        that stays the device's until a status change or revocation, masked identity when asked for; valid
        ``device_ttl`` seconds and never past the status's own validity. Audited.

        Raises:
            UsageError: not a usable public JWK (a private one is refused and never stored).
            NotFound, StatusExpired, DeviceRevoked, DeviceLimit, NoSigningKey, KeyFileError.
        """
        device = DeviceKey.from_jwk(jwk)
        rec = self._current(subject, now)
        ttl = self.settings.device_ttl
        if rec.status_until is not None:
            ttl = min(ttl, rec.status_until - now)
        active = self.key
        issue = DeviceIssue(subject, device.thumbprint(), device.alg.name, active.record.kid, now + ttl, now, actor)
        index = self.storage.device_credential(issue, self.settings.max_devices)
        claims = Claims.device(
            bytes.fromhex(subject),
            Status[rec.status.upper()],
            now,
            index,
            device,
            ttl=ttl,
            issuer=self.settings.issuer_id,
            name=rec.name if identity else None,
            id_number=rec.id_number if identity else None,
        )
        credential = credential_text(mint_credential(claims, active.key))
        return MintedCode(credential, claims.expires_at, rec.status, rec.masked_name, index)

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
