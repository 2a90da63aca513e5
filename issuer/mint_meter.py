"""Minting is accounted for, not audited row by row (DESIGN §6: a mint changes no state).

Each worker counts its mints per API key, minute, signing key and scenario in memory and adds the counts
to the database every ``mint_count_flush_s`` seconds (default 1) and when it stops. The loss window is
stated, and tested: a worker killed outright (``kill -9``, power cut) loses the counts of at most its last
flush interval; codes themselves are never lost or duplicated by this, only their tally. A flush that
fails (database away) keeps its counts for the next one.
"""

from __future__ import annotations

import threading
from collections import Counter

from issuer.storage import MintCount, Storage

Key = tuple[str, int, str, str]  # actor, minute, kid, scenario


class MintMeter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._counts: Counter[Key] = Counter()
        self._lock = threading.Lock()

    def add(self, actor: str, at: int, kid: str, scenario: str) -> None:
        key = (actor, at - at % 60, kid, scenario)
        with self._lock:
            self._counts[key] += 1

    @property
    def pending(self) -> int:
        """Mints counted here and not yet written."""
        with self._lock:
            return sum(self._counts.values())

    def flush(self) -> int:
        """Write the counts held; return how many mints they cover.

        Raises:
            StorageUnavailable (or the backend's error): nothing was written; the counts are kept.
        """
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        try:
            self.storage.mint_counts_add([MintCount(*key, n) for key, n in counts.items()])
        except BaseException:
            with self._lock:
                self._counts.update(counts)
            raise
        return sum(counts.values())
