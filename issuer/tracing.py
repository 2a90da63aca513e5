"""Tracing: from the pseudonyms in a scan log back to the people who showed them (docs/format.md §4).

Only the issuer can do it, and only with its pseudonym keys (``keys/pseudonym.key``); every use names a
reason and is audited, one row per pseudonym asked about, resolved or not. A previous-form code's ``sub``
(8 bytes) is the subject id itself: it resolves without a key, and the audit says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from issuer.errors import InputError, Problem
from issuer.keys.pseudonym_keys import PseudonymKeys
from issuer.storage.protocols import AuditStore
from suishenma import PSEUDONYM_BYTES

MAX_TRACE = 10_000  # pseudonyms in one request
MAX_REASON = 500
_SUBJECT_BYTES = 8


@dataclass(frozen=True)
class Resolution:
    pseudonym: str
    subject: str | None  # None: no key here opens it to an enrolled person
    key: str | None  # kid of the pseudonym key that opened it; None for a previous-form sub, or unresolved


def trace(
    storage: AuditStore, keys: PseudonymKeys, pseudonyms: Sequence[str], reason: str, now: int, actor: str
) -> list[Resolution]:
    """Resolve each pseudonym (hex, as scan logs hold it) to the subject it names, and audit every one.

    Raises:
        InputError: no reason given, too many pseudonyms, or one that is not 16 bytes in hex (nor a
            previous-form subject id); nothing is resolved or audited then.
    """
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InputError(Problem.TRACE_REASON_MISSING, most=MAX_REASON)
    if len(pseudonyms) > MAX_TRACE:
        raise InputError(Problem.TRACE_TOO_MANY, count=len(pseudonyms), most=MAX_TRACE)
    candidates: list[list[tuple[str | None, str]]] = []
    for text in pseudonyms:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(raw) == PSEUDONYM_BYTES:
            candidates.append([(kid, subject.hex()) for kid, subject in keys.candidates(raw)])
        elif len(raw) == _SUBJECT_BYTES:
            candidates.append([(None, raw.hex())])
        else:
            raise InputError(Problem.PSEUDONYM_MALFORMED, pseudonym=text[:80])
    enrolled = storage.subjects_exist([s for c in candidates for _, s in c])
    results = []
    for text, options in zip(pseudonyms, candidates, strict=True):
        found = next(((kid, s) for kid, s in options if s in enrolled), None)
        results.append(Resolution(text.lower(), found[1] if found else None, found[0] if found else None))
    events: list[tuple[str, str, dict[str, object]]] = [
        ("trace", r.subject or "-", {"pseudonym": r.pseudonym, "reason": reason, "key": r.key}) for r in results
    ]
    storage.audit_events(events, now, actor)
    return results
