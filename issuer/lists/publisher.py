"""Signed lists as the issuer publishes them: re-signed when changed or near expiry, cached with an ETag.

Trust list: signed by the root. When the root key is kept here (development) it is re-signed
automatically; in production the root stays offline and an operator re-signs with the CLI.
Status list: 2 bits per paper code or device (valid / revoked / suspended), signed by the current issuer key,
rebuilt lazily on the first request after a change. Each version is recorded with its content's digest and
the delta from the version before it (status_versions.py), for timestamps and deltas (freshness.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from issuer.errors import Conflict, NoTrustList
from issuer.keys.signing_keys import ROOT_KEY, load_active_key, root_signing_key, trust_entries
from issuer.lists.status_versions import StatusContent, content_of, version_record
from issuer.settings import Settings
from issuer.signing_times import STATUS_LIST as SIGNED_STATUS_LIST
from issuer.signing_times import TRUST_LIST as SIGNED_TRUST_LIST
from issuer.signing_times import timed
from issuer.storage import ListVersion, PublishedList, StatusSnapshot, Storage
from suishenma import (
    EntryStatus,
    ListError,
    StatusList,
    load_verification_key,
    parse_trust_list,
    sign_status_list,
    sign_trust_list,
)

log = logging.getLogger(__name__)
TRUST_LIST = "trust"
BUILD_LEASE_S = 120.0  # longer than signing the largest status list takes


def status_list_name(issuer_id: str) -> str:
    return f"status:{issuer_id}"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class Publisher:
    """Hands out the current signed lists. One writer builds a new version: a lock among this process's
    threads, and a lease in the database among workers and nodes; the others serve the held list
    meanwhile. Should two sign at once anyway (an expired lease), the second one's version is refused by
    the database and it serves the first one's list."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self._lock = threading.Lock()
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._cache: dict[str, PublishedList] = {}
        self._forms_checked: tuple[int, bool] = (0, True)  # (held trust-list version, states our forms)
        self._content: dict[str, StatusContent] = {}  # the status list content this process built last

    def _held(self, name: str) -> PublishedList | None:
        """The published list, its body read from the database only when its version changed: a list of a
        city's entries is about a megabyte, and caches revalidate it far more often than it changes."""
        state = self.storage.list_state(name)
        if state is None:
            return None
        version, pending = state
        cached = self._cache.get(name)
        if cached is None or cached.version != version:
            fetched = self.storage.list_get(name)
            if fetched is None:
                return None
            cached = self._cache[name] = fetched
        return dataclasses.replace(cached, pending=pending)

    @contextmanager
    def _build(self, name: str, now: int) -> Iterator[bool]:
        """Whether this process may build ``name`` now (it holds the lease until the block ends)."""
        lease = f"build:{name}"
        if not self.storage.lease(lease, self._holder, now, BUILD_LEASE_S):
            yield False
            return
        try:
            yield True
        finally:
            self.storage.lease(lease, self._holder, now, -1.0)  # released

    def _publish(
        self,
        lst: PublishedList,
        actor: str,
        changes_seen: int,
        held: Callable[[], PublishedList | None],
        record: ListVersion | None = None,
    ) -> PublishedList:
        try:
            self.storage.list_put(lst, actor, changes_seen, record)
            return lst
        except Conflict:
            newer = held()
            if newer is None:
                raise
            log.info("%s version %d was published by another worker first", lst.name, newer.version)
            return newer

    def states_our_forms(self, held: PublishedList) -> bool:
        """Whether the held trust list gives this issuer's keys the slot, previous-forms window and timestamp URI
        the settings say (a changed ``device_batch`` or ``previous_forms_until`` needs a new list: verifiers take
        them from it). Checked once per held version.

        Raises:
            KeyFileError: keys/root.pub is missing or damaged.
        """
        version, ok = self._forms_checked
        if version != held.version:
            root = load_verification_key(self.settings.keys_path / f"{ROOT_KEY}.pub")
            try:
                trust = parse_trust_list(held.body, root, now=held.issued_at)
            except ListError:
                return False
            window = self.settings.previous_forms_until or None
            ours = [e for e in trust.issuers if e.issuer == self.settings.issuer_id]
            stamp = self.settings.timestamp_uri
            ok = all(
                e.slot == self.settings.slot and e.previous_forms_until == window and e.timestamp_uri == stamp
                for e in ours
            )
            self._forms_checked = (held.version, ok)
            if not ok and root_signing_key(self.settings) is None:
                log.warning(
                    "the trust list in force states another slot, previous-forms window or timestamp URI for %s than"
                    " the settings: phones' credentials fail at kiosks, or kiosks download whole status lists, until"
                    " a new list is signed (trust-list request, sign, import)",
                    self.settings.issuer_id,
                )
        return ok

    def trust_list(self, now: int, *, force: bool = False, actor: str = "system") -> PublishedList:
        """The current trust list, re-signed first when forced, missing, in the last quarter of its life, or
        not stating this issuer's slot and previous-forms window as the settings do (``states_our_forms``).

        Raises:
            NoTrustList: none held, and no root key to sign one.
            KeyFileError: a key file cannot be read.
        """
        with self._lock:
            held = self._held(TRUST_LIST)
            ttl = self.settings.trust_list_ttl
            fresh = held is not None and held.expires_at - now > ttl // 4
            if not force and held is not None and fresh and self.states_our_forms(held):
                return held
            root = root_signing_key(self.settings)
            if root is None:
                if held is None:
                    raise NoTrustList()
                if held.expires_at <= now:
                    log.error("trust list expired at %d; re-sign it with the offline root key", held.expires_at)
                return held
            with self._build(TRUST_LIST, now) as mine:
                if not mine and held is not None and not force:
                    return held
                version = (held.version if held else 0) + 1
                entries = trust_entries(self.settings, self.storage, now)
                with timed(SIGNED_TRUST_LIST):
                    body = sign_trust_list(entries, root, version=version, now=now, ttl=ttl)
                lst = PublishedList(TRUST_LIST, version, body, etag_of(body), now, now + ttl, 0)
                out = self._publish(lst, actor, 0, lambda: self.storage.list_get(TRUST_LIST))
                if out is lst:
                    log.info("signed trust list version %d", version)
                return out

    def status_list(self, now: int, *, actor: str = "system", force: bool = False) -> PublishedList:
        """This issuer's status list, rebuilt when forced, when a paper code changed state or when half its
        validity is gone.

        Raises:
            NoSigningKey, KeyFileError: no usable signing key.
        """
        name = status_list_name(self.settings.issuer_id)
        with self._lock:
            # Two cheap reads decide whether the held list stands; the entries themselves (hundreds of
            # thousands of rows at city scale) are read only to build a new one.
            held = self._held(name)
            fresh = held is not None and held.expires_at - now > self.settings.status_list_valid_for // 2
            if (
                not force
                and fresh
                and held is not None
                and held.pending == 0
                and held.size >= self._size(self.storage.status_top_index())
            ):
                return held
            with self._build(name, now) as mine:
                if not mine and held is not None and held.expires_at > now:
                    return held  # another worker is building the next version
                snap = self.storage.status_snapshot(name)
                return self._sign_status_list(name, held, snap, self._size(snap.max_index), now, actor)

    def _sign_status_list(
        self, name: str, held: PublishedList | None, snap: StatusSnapshot, size: int, now: int, actor: str
    ) -> PublishedList:
        lst = StatusList(size, bits=2)
        for index, state in snap.nonvalid:
            lst.set(index, EntryStatus(state))
        version = (held.version if held else 0) + 1
        key = load_active_key(self.settings, self.storage).key
        new = StatusContent(version, size, lst.bits, bytes(lst.data))
        before = self._content.get(name)
        if held is not None and (before is None or before.version != held.version):
            before = content_of(held, self.settings, self.storage)
        record = version_record(name, self.settings.issuer_id, before, new, now)
        uri = self.settings.status_list_uri
        with timed(SIGNED_STATUS_LIST):
            body = sign_status_list(
                lst,
                key,
                uri=uri,
                issuer=self.settings.issuer_id,
                version=version,
                now=now,
                valid_for=self.settings.status_list_valid_for,
                ttl=self.settings.status_list_ttl,
            )
        out = PublishedList(name, version, body, etag_of(body), now, now + self.settings.status_list_valid_for, 0, size)
        published = self._publish(out, actor, snap.pending, lambda: self.storage.list_get(name), record)
        if published is out:
            self._content[name] = new
            self.storage.list_versions_prune(name, now - self.settings.delta_window)
        return published

    def _size(self, max_index: int) -> int:
        size = self.settings.status_list_capacity
        while size <= max_index:
            size *= 2
        return size
