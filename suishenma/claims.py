"""The claims of a code (docs/format.md §4) and what a verification returns.

Standard claims iss, sub, iat and exp, the device key of a device credential in ``cnf`` (RFC 8747),
and every field of ours in one private claim (``Claim.SUISHENMA``) holding a small-int map.

The current forms of dynamic codes and device credentials leave iss and exp out (``Claims.implied``): the
issuer is the signing key's, and a dynamic code lives ``DYNAMIC_TTL`` seconds, a device credential the
slot its key's trust-list entry states. Their ``sub`` is a pseudonym of its own (``pseudonyms.py``). The
previous forms carry both, and are accepted until the key's entry says otherwise (``check_form``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from . import _cbor
from .device_key import DeviceKey
from .errors import CodeClaimsError, CodeFormatError, Reason, UsageError
from .keyring import TrustedKey
from .labels import Alg, Claim, Cnf, CodeType, SmField, Status
from .masking import MAX_ID_NUMBER, MAX_NAME, check_display_text, mask_id_number, mask_name

DYNAMIC_TTL = 60
OFFLINE_TTL = 180 * 24 * 3600
DEFAULT_SKEW = 10
DEFAULT_ISSUER = "SH"
MAX_ISSUER = 16
MAX_SUBJECT = 32
MAX_INDEX = 2**32 - 1
DEVICE_TTL = 24 * 3600  # a device credential lives at most a day
# Our largest claims map is about 80 bytes; the cap bounds decoding work.
MAX_CLAIMS_BYTES = 512


@dataclass(frozen=True)
class Claims:
    """The claims of one code. Name and ID number are always masked forms."""

    issuer: str
    subject: bytes
    issued_at: int
    expires_at: int
    status: Status
    code_type: CodeType = CodeType.DYNAMIC
    masked_name: str | None = None
    masked_id: str | None = None
    status_index: int | None = None
    device_key: DeviceKey | None = None  # device credentials only: the key in ``cnf``
    implied: bool = False  # the current form: iss and exp left out, implied by the key's trust-list entry

    @classmethod
    def dynamic(
        cls,
        subject: bytes,
        status: Status,
        now: int,
        *,
        ttl: int | None = None,
        issuer: str = DEFAULT_ISSUER,
        name: str | None = None,
        id_number: str | None = None,
    ) -> Claims:
        """Claims of a phone's code, valid ``DYNAMIC_TTL`` seconds from ``now`` in the current form (no iss,
        no exp); with ``ttl``, the previous form, which carries both. Name and ID get masked.

        Raises:
            UsageError: a value out of range.
        """
        implied = ttl is None
        return cls._masked(
            issuer,
            subject,
            now,
            DYNAMIC_TTL if ttl is None else ttl,
            status,
            CodeType.DYNAMIC,
            name,
            id_number,
            implied=implied,
        )

    @classmethod
    def offline(
        cls,
        subject: bytes,
        status: Status,
        now: int,
        status_index: int,
        *,
        ttl: int = OFFLINE_TTL,
        issuer: str = DEFAULT_ISSUER,
        name: str | None = None,
        id_number: str | None = None,
    ) -> Claims:
        """Claims of a printed code, revocable through ``status_index``.

        Raises:
            UsageError: a value out of range.
        """
        return cls._masked(issuer, subject, now, ttl, status, CodeType.OFFLINE, name, id_number, status_index)

    @classmethod
    def device(
        cls,
        subject: bytes,
        status: Status,
        now: int,
        status_index: int,
        device_key: DeviceKey,
        *,
        ttl: int = DEVICE_TTL,
        slot: int | None = None,
        issuer: str = DEFAULT_ISSUER,
        name: str | None = None,
        id_number: str | None = None,
    ) -> Claims:
        """Claims of a device credential: bound to ``device_key``, revocable through ``status_index``. With
        ``slot`` (the current form) it is valid ``slot`` seconds from ``now`` and carries no exp; without, it
        is of the previous form, valid ``ttl`` seconds.

        Raises:
            UsageError: a value out of range, or ``ttl`` beyond a day.
        """
        return cls._masked(
            issuer,
            subject,
            now,
            ttl if slot is None else slot,
            status,
            CodeType.DEVICE,
            name,
            id_number,
            status_index,
            device_key,
            implied=slot is not None,
        )

    @classmethod
    def _masked(
        cls,
        issuer: str,
        subject: bytes,
        now: int,
        ttl: int,
        status: Status,
        code_type: CodeType,
        name: str | None,
        id_number: str | None,
        status_index: int | None = None,
        device_key: DeviceKey | None = None,
        *,
        implied: bool = False,
    ) -> Claims:
        masked_name = mask_name(name) if name else None
        masked_id = mask_id_number(id_number) if id_number else None
        claims = cls(issuer, subject, now, now + ttl, Status(status), code_type, masked_name, masked_id)
        return replace(claims, status_index=status_index, device_key=device_key, implied=implied).checked()

    def checked(self) -> Claims:
        """Return self after checking every field's range.

        Raises:
            UsageError: a value out of range.
        """
        if not 1 <= len(self.issuer) <= MAX_ISSUER:
            raise UsageError(f"issuer must have 1 to {MAX_ISSUER} characters")
        if not 1 <= len(self.subject) <= MAX_SUBJECT:
            raise UsageError(f"subject must have 1 to {MAX_SUBJECT} bytes")
        if not 0 <= self.issued_at < self.expires_at < 2**63:
            raise UsageError("expiry must come after issue time")
        if (self.code_type != CodeType.DYNAMIC) != (self.status_index is not None):
            raise UsageError("offline codes and device credentials, and only they, carry a status-list index")
        if (self.code_type == CodeType.DEVICE) != (self.device_key is not None):
            raise UsageError("device credentials, and only they, carry a device key")
        if self.code_type == CodeType.DEVICE and self.expires_at - self.issued_at > DEVICE_TTL:
            raise UsageError(f"a device credential lives at most {DEVICE_TTL} s")
        if self.implied and (
            self.code_type == CodeType.OFFLINE
            or (self.code_type == CodeType.DYNAMIC and self.expires_at - self.issued_at != DYNAMIC_TTL)
        ):
            raise UsageError(f"only a dynamic code of {DYNAMIC_TTL} s or a device credential may leave exp implied")
        if self.status_index is not None and not 0 <= self.status_index <= MAX_INDEX:
            raise UsageError("status index out of range")
        # Shown on kiosk screens: no control, bidi-override or line-separator characters. The
        # isprintable() test is the fast path of every scan; check_display_text says what is wrong.
        name, masked_id = self.masked_name, self.masked_id
        if not (
            self.issuer.isprintable()
            and (name is None or name.isprintable())
            and (masked_id is None or masked_id.isprintable())
        ):
            check_display_text(self.issuer, "issuer")
            check_display_text(name or "", "masked name")
            check_display_text(masked_id or "", "masked ID")
        return self

    def to_cbor_map(self) -> dict[int, Any]:
        """The CWT claims map, in the order docs/format.md gives."""
        # Plain ints, not IntEnum members: cbor2 encodes int subclasses through a slow path.
        ours: dict[int, Any] = {int(SmField.STATUS): int(self.status)}
        # The type is implied for dynamic codes, and for current-form credentials by their cnf (2 bytes).
        if self.code_type != CodeType.DYNAMIC and not (self.implied and self.device_key is not None):
            ours[int(SmField.CODE_TYPE)] = int(self.code_type)
        if self.masked_name is not None:
            ours[int(SmField.MASKED_NAME)] = self.masked_name
        if self.masked_id is not None:
            ours[int(SmField.MASKED_ID)] = self.masked_id
        if self.status_index is not None:
            ours[int(SmField.STATUS_INDEX)] = self.status_index
        if self.device_key is not None:
            # A device credential's issuer is the one its key is listed for: iss is left out (4 bytes).
            m: dict[int, Any] = {int(Claim.SUB): self.subject, int(Claim.IAT): self.issued_at}
            if not self.implied:
                m[int(Claim.EXP)] = self.expires_at
            m[int(Claim.CNF)] = {int(Cnf.COSE_KEY): self.device_key.to_cose()}
            m[int(Claim.SUISHENMA)] = ours
            return m
        if self.implied:  # the current dynamic form: iss is the key's, exp is iat + DYNAMIC_TTL (10 bytes)
            return {int(Claim.SUB): self.subject, int(Claim.IAT): self.issued_at, int(Claim.SUISHENMA): ours}
        return {
            int(Claim.ISS): self.issuer,
            int(Claim.SUB): self.subject,
            int(Claim.IAT): self.issued_at,
            int(Claim.EXP): self.expires_at,
            int(Claim.SUISHENMA): ours,
        }

    @classmethod
    def from_cbor_map(cls, m: Any, key_issuer: str | None = None, slot: int | None = None) -> Claims:
        """Read and type-check a claims map (docs/format.md §4).

        Exact type checks (``type(x) is int``) keep bool out and are the fast path of every scan.
        ``key_issuer`` (the signing key's issuer) stands in for an absent iss, and ``slot`` (the seconds its
        trust-list entry gives device credentials) for a device credential's absent exp; a dynamic code
        without exp lives ``DYNAMIC_TTL`` seconds.

        Raises:
            CodeFormatError: PAYLOAD_NOT_MAP.
            CodeClaimsError: MISSING_CLAIM or BAD_CLAIM (also for an unusable device key).
        """
        if type(m) is not dict:
            raise CodeFormatError(Reason.PAYLOAD_NOT_MAP)
        issuer, subject, iat, exp, ours = m.get(_ISS), m.get(_SUB), m.get(_IAT), m.get(_EXP), m.get(_OURS)
        cnf = m.get(_CNF)
        if issuer is None:
            if key_issuer is None:
                raise CodeClaimsError(Reason.MISSING_CLAIM, "iss: left out, the issuer is its key's, and it names none")
            issuer = key_issuer
        if not (type(issuer) is str and type(subject) is bytes and type(iat) is int and type(exp) in _INT_OR_NONE):
            _raise_claim_error(m, ((_ISS, str), (_SUB, bytes), (_IAT, int), (_EXP, int)))
        if type(ours) is not dict:
            _raise_claim_error(m, ((_OURS, dict),))
        status, code_type = ours.get(_STATUS), ours.get(_CODE_TYPE, _DYNAMIC if cnf is None else _DEVICE)
        name, masked_id, index = ours.get(_NAME), ours.get(_MASKED_ID), ours.get(_INDEX)
        if not (
            type(status) is int
            and type(code_type) is int
            and (name is None or type(name) is str)
            and (masked_id is None or type(masked_id) is str)
            and (index is None or type(index) is int)
        ):
            _raise_claim_error(
                ours, ((_STATUS, int), (_CODE_TYPE, int), (_NAME, str), (_MASKED_ID, str), (_INDEX, int))
            )
        if status not in _STATUSES or code_type not in _CODE_TYPES:
            raise CodeClaimsError(Reason.BAD_CLAIM, "unknown status or code type")
        if (name is not None and len(name) > MAX_NAME) or (masked_id is not None and len(masked_id) > MAX_ID_NUMBER):
            raise CodeClaimsError(Reason.BAD_CLAIM, "identity field too long")
        device_key = None if cnf is None else _device_key(cnf)
        implied = exp is None
        if exp is None:
            if code_type == _DYNAMIC:
                exp = iat + DYNAMIC_TTL
            elif code_type == _DEVICE and slot is not None:
                exp = iat + slot
            else:
                raise CodeClaimsError(Reason.MISSING_CLAIM, "exp: only dynamic codes and slot credentials imply it")
        claims = cls(
            issuer,
            subject,
            iat,
            exp,
            _STATUSES[status],
            _CODE_TYPES[code_type],
            name,
            masked_id,
            index,
            device_key,
            implied,
        )
        try:
            return claims.checked()
        except UsageError as exc:
            raise CodeClaimsError(Reason.BAD_CLAIM, exc.detail) from None


_ISS, _SUB, _IAT, _EXP, _OURS = int(Claim.ISS), int(Claim.SUB), int(Claim.IAT), int(Claim.EXP), int(Claim.SUISHENMA)
_CNF, _COSE_KEY = int(Claim.CNF), int(Cnf.COSE_KEY)
_STATUS, _CODE_TYPE, _NAME = int(SmField.STATUS), int(SmField.CODE_TYPE), int(SmField.MASKED_NAME)
_MASKED_ID, _INDEX = int(SmField.MASKED_ID), int(SmField.STATUS_INDEX)
_STATUSES = {int(s): s for s in Status}
_CODE_TYPES = {int(t): t for t in CodeType}
_DYNAMIC, _DEVICE = int(CodeType.DYNAMIC), int(CodeType.DEVICE)
_INT_OR_NONE = (int, type(None))


def decode_claims(payload: bytes) -> Any:
    """The claims map of a verified payload, decoded within the caps (docs/format.md §3, §4).

    Raises:
        CodeFormatError: MALFORMED.
    """
    try:
        return _cbor.loads(payload, max_bytes=MAX_CLAIMS_BYTES, max_items=64)
    except ValueError as exc:
        raise CodeFormatError(Reason.MALFORMED, f"claims: {exc}") from None


def credential_device_key(m: Any) -> DeviceKey:
    """The device key a credential's claims map is bound to.

    Raises:
        CodeClaimsError: MISSING_CLAIM (no cnf) or BAD_CLAIM.
    """
    if type(m) is not dict or _CNF not in m:
        raise CodeClaimsError(Reason.MISSING_CLAIM, "cnf")
    return _device_key(m[_CNF])


def _device_key(cnf: Any) -> DeviceKey:
    """The key in a ``cnf`` claim (RFC 8747 §3.1: COSE_Key only).

    Raises:
        CodeClaimsError: BAD_CLAIM.
    """
    if type(cnf) is not dict or set(cnf) != {_COSE_KEY}:
        raise CodeClaimsError(Reason.BAD_CLAIM, "cnf must hold exactly one COSE_Key")
    try:
        return DeviceKey.from_cose(cnf[_COSE_KEY])
    except UsageError as exc:
        raise CodeClaimsError(Reason.BAD_CLAIM, f"device key: {exc.detail}") from None


def _raise_claim_error(m: dict[Any, Any], fields: tuple[tuple[int, type], ...]) -> NoReturn:
    """Raise the precise error for the first missing or mistyped field (slow path).

    Raises:
        CodeClaimsError: always, MISSING_CLAIM or BAD_CLAIM.
    """
    for key, typ in fields:
        value = m.get(key)
        if value is None and key in (_STATUS, _ISS, _SUB, _IAT, _OURS):
            raise CodeClaimsError(Reason.MISSING_CLAIM, f"claim {key}")
        if value is not None and type(value) is not typ:
            raise CodeClaimsError(Reason.BAD_CLAIM, f"claim {key} must be {typ.__name__}")
    raise CodeClaimsError(Reason.BAD_CLAIM)


@dataclass(frozen=True)
class VerifiedCode:
    """What ``verify`` returns: claims whose signature, key limits and times all checked out.

    For a device-bound code, ``claims`` are the device credential's and ``presented_at`` is the
    time the phone signed the presentation; ``issued_at`` and ``expires_at`` are the code's own.
    """

    claims: Claims
    kid: bytes
    alg: Alg
    trusted: TrustedKey
    digest: bytes  # identifies the signed content; see signed_digest
    presented_at: int | None = None
    credential_digest: bytes | None = None  # a device-bound code's credential (what the issuer signed)

    @property
    def issued_at(self) -> int:
        """When this code was made: the presentation time of a device-bound code."""
        return self.claims.issued_at if self.presented_at is None else self.presented_at

    @property
    def expires_at(self) -> int:
        """When this code stops being valid (a presentation lives DYNAMIC_TTL, within its credential)."""
        if self.presented_at is None:
            return self.claims.expires_at
        return min(self.presented_at + DYNAMIC_TTL, self.claims.expires_at)


def signed_digest(protected: bytes, payload: bytes, presentation: bytes = b"") -> bytes:
    """SHA-256 over what the signature covers (protected header and payload, length-prefixed).

    Two texts carrying the same signed content have the same digest whatever their transport form
    (raw or zlib), unprotected header, or signature representation (ECDSA's (r, s) and (r, n - s)
    both verify), so a replay cache keyed on it cannot be dodged by re-encoding a used code. For a
    device-bound code ``presentation`` is the external AAD the phone signed (its presentation time):
    the payload is one self-delimiting CBOR item, so appending it is unambiguous.
    """
    return hashlib.sha256(len(protected).to_bytes(4, "big") + protected + payload + presentation).digest()


def check_form(claims: Claims, trusted: TrustedKey, now: int) -> None:
    """A dynamic code or device credential of the previous form (it carries exp, and a ``sub`` that never
    changes) only within the window its key's trust-list entry states (docs/format.md §5, key 8).

    Raises:
        CodeClaimsError: PREVIOUS_FORM.
    """
    until = trusted.previous_forms_until
    if until is not None and not claims.implied and claims.code_type is not CodeType.OFFLINE and now > until:
        raise CodeClaimsError(Reason.PREVIOUS_FORM, f"previous forms of issuer {claims.issuer} ended at {until}")


def check_key_limits(claims: Claims, trusted: TrustedKey) -> None:
    """The trust-list limits of the signing key (docs/format.md §5).

    Raises:
        CodeClaimsError: ISSUER_MISMATCH, TYPE_NOT_ALLOWED or KEY_NOT_VALID.
    """
    if trusted.issuer is not None and claims.issuer != trusted.issuer:
        raise CodeClaimsError(Reason.ISSUER_MISMATCH, f"code says {claims.issuer}, key is {trusted.issuer}'s")
    if claims.code_type not in trusted.code_types:
        raise CodeClaimsError(Reason.TYPE_NOT_ALLOWED, claims.code_type.name.lower())
    if (trusted.valid_from is not None and claims.issued_at < trusted.valid_from) or (
        trusted.valid_until is not None and claims.issued_at > trusted.valid_until
    ):
        raise CodeClaimsError(Reason.KEY_NOT_VALID)
