"""What each published status-list version records: its content's digest, and the delta from the version
before it, computed once when the version is signed (docs/format.md §6, "Deltas")."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

from issuer.keys.signing_keys import trust_entries
from issuer.settings import Settings
from issuer.storage import ListVersion, PublishedList, Storage
from suishenma import SuishenmaError, parse_status_list
from suishenma.statusdelta import changes_between, encode_delta
from suishenma.statuslist import list_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusContent:
    """The bit string of one status-list version."""

    version: int
    size: int
    bits: int
    data: bytes

    @cached_property
    def digest(self) -> bytes:
        """``list_digest`` of the content, once: a held version's digest is the next version's from-digest
        (SHA-256 over 16 MB of a city's list is about 10 ms)."""
        return list_digest(self.bits, self.size, self.data)


def content_of(held: PublishedList, settings: Settings, storage: Storage) -> StatusContent | None:
    """The content of a published status list, read back from its signed body (when another process built
    it); None when no key of ours verifies it any more, and the next version then has no delta."""
    keys = {e.key.kid: e.key for e in trust_entries(settings, storage, held.issued_at)}
    try:
        lst = parse_status_list(held.body, keys, now=held.issued_at)
    except SuishenmaError as exc:
        log.warning("status list version %d cannot be read back (%s): its successor has no delta", held.version, exc)
        return None
    return StatusContent(lst.version, lst.size, lst.bits, lst.data)


def version_record(name: str, issuer: str, before: StatusContent | None, new: StatusContent, now: int) -> ListVersion:
    """The record of ``new``: its digest and, when the content before it is known, the delta from it."""
    digest = new.digest
    delta = None
    if before is not None and before.bits == new.bits and before.version == new.version - 1:
        indices, values = changes_between(before.data, before.size, new.data, new.size, new.bits)
        delta = encode_delta(
            issuer=issuer,
            from_version=before.version,
            to_version=new.version,
            from_digest=before.digest,
            to_digest=digest,
            bits=new.bits,
            size=new.size,
            indices=indices,
            values=values,
        )
    return ListVersion(name, new.version, digest, new.size, now, delta)
