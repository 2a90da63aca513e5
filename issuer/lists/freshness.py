"""Freshness in bytes: the signed timestamp and the status-list deltas this issuer serves (docs/format.md §6).

The timestamp names the current status-list version and its content digest. It is re-signed whenever it
is older than ``timestamp_interval`` or names an older version, so a verifier learns of a new version on
its next sync and, from the timestamp's signed time, how fresh its list is. Deltas between any two versions
still recorded (``delta_window``) are composed from the per-version deltas; they never change, so any
HTTP cache may keep them.
"""

from __future__ import annotations

import itertools
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from issuer.lists.publisher import Publisher, status_list_name
from issuer.settings import Settings
from issuer.signing_times import TIMESTAMP, timed
from issuer.storage import ListVersion, PublishedList, Storage
from suishenma import ListError, SigningKey
from suishenma.freshness import sign_timestamp
from suishenma.statusdelta import parse_delta

DELTA_CACHE_BYTES = 16 << 20  # composed deltas kept in memory, by size (immutable: an HTTP cache keeps them too)


@dataclass(frozen=True)
class Timestamp:
    body: bytes
    version: int
    issued_at: int
    expires_at: int


class Freshness:
    """Signs timestamps and composes deltas for this issuer's status list."""

    def __init__(self, settings: Settings, storage: Storage, publisher: Publisher, key: Callable[[], SigningKey]):
        self.settings, self.storage, self.publisher, self._key = settings, storage, publisher, key
        self.name = status_list_name(settings.issuer_id)
        self._lock = threading.Lock()
        self._stamp: Timestamp | None = None
        self._deltas: OrderedDict[tuple[int, int], bytes | None] = OrderedDict()
        self._delta_bytes = 0

    def timestamp(self, now: int) -> Timestamp:
        """The current timestamp, re-signed first when it is due or names an older version than the held list.

        Raises:
            NoSigningKey, KeyFileError: no usable signing key.
        """
        held = self.publisher.status_list(now)
        with self._lock:
            cached = self._stamp
        if cached is not None and self._current(cached, held.version, now):
            return cached
        record = self._record(held.version)  # a database read, only when a new stamp is due
        if record is None:  # a version published before versions were recorded: publish one that is
            held = self.publisher.status_list(now, force=True)
            record = self._record(held.version)
            if record is None:
                raise RuntimeError(f"status list version {held.version} was published without its record")
        with self._lock:
            stamp = self._stamp
            if stamp is None or not self._current(stamp, held.version, now):
                valid_for = self.settings.timestamp_valid_for
                key = self._key()
                with timed(TIMESTAMP):
                    body = sign_timestamp(
                        key,
                        issuer=self.settings.issuer_id,
                        version=held.version,
                        size=record.size,
                        digest=record.digest,
                        now=now,
                        valid_for=valid_for,
                    )
                stamp = self._stamp = Timestamp(body, held.version, now, now + valid_for)
            return stamp

    def delta(self, first: int, last: int, now: int) -> bytes | None:
        """The delta from version ``first`` to ``last``, or None when it cannot be given: a version out of
        range or no longer recorded, a step without a delta, or a result larger than the full list (then
        the full list is the cheaper download)."""
        held = self.publisher.status_list(now)
        if not 1 <= first < last <= held.version:
            return None
        with self._lock:
            if (first, last) in self._deltas:
                self._deltas.move_to_end((first, last))
                return self._deltas[(first, last)]
        out = self._compose(self.storage.list_versions(self.name, first + 1, last), first, last, held)
        with self._lock:
            if (first, last) not in self._deltas:
                self._deltas[(first, last)] = out
                self._delta_bytes += len(out or b"")
            while self._delta_bytes > DELTA_CACHE_BYTES:
                _, dropped = self._deltas.popitem(last=False)
                self._delta_bytes -= len(dropped or b"")
        return out

    def _current(self, stamp: Timestamp, version: int, now: int) -> bool:
        """Whether ``stamp`` names ``version`` and is younger than ``timestamp_interval``."""
        return stamp.version == version and 0 <= now - stamp.issued_at < self.settings.timestamp_interval

    def _record(self, version: int) -> ListVersion | None:
        rows = self.storage.list_versions(self.name, version, version)
        return rows[0] if rows else None

    def _compose(self, rows: list[ListVersion], first: int, last: int, held: PublishedList) -> bytes | None:
        """The steps ``first``→``last`` merged in one pass (one map of changes, sorted once), or None when a
        step is missing, lacks its delta or does not follow the one before."""
        if [r.version for r in rows] != list(range(first + 1, last + 1)) or any(r.delta is None for r in rows):
            return None
        changes: dict[int, int] = {}
        try:
            steps = [parse_delta(r.delta or b"") for r in rows]
        except ListError:
            return None
        for before, after in itertools.pairwise(steps):
            if after.from_digest != before.to_digest or after.bits != before.bits or after.size < before.size:
                return None  # records that do not chain (a version rebuilt from a damaged body): no delta
        for step in steps:
            changes.update(zip(step.indices, step.values, strict=True))
        ordered = sorted(changes)
        body = replace(
            steps[-1],
            from_version=first,
            from_digest=steps[0].from_digest,
            indices=array("q", ordered),
            values=bytes(changes[i] for i in ordered),
        ).to_bytes()
        return body if len(body) < len(held.body) else None
