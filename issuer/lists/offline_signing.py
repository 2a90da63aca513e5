"""Signing the trust list with a root key that never touches the issuer host.

1. On the issuer: ``trust-list request --out request.json`` writes what the next list must hold.
2. On the offline machine: ``trust-list sign --request request.json --root-key root.key --out trust.cwt``
   (no database needed there); one ``--request`` per region signs a federated list (federation.py). Every
   key must be confirmed: listed for its region in the list in force (``--current trust.cwt``, the last
   list this root signed), vouched for by such a key, or confirmed by the operator (``--expect SH=KID``).
3. Back on the issuer: ``trust-list import trust.cwt`` checks it against the pinned ``keys/root.pub``
   (signature, not expired, version above the held one, the current signing key listed) and publishes it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from issuer.errors import THE_SIGNING_KEY, Conflict, InputError, KeyUnusable, Problem
from issuer.keys.signing_keys import ROOT_KEY, active_record, load_active_key, open_signing_key, trust_entries
from issuer.lists.federation import (
    KeyStanding,
    MergedRequests,
    add_proof,
    check_own_entries,
    entry_to_json,
    key_standing,
    require_confirmed,
    voucher_of,
)
from issuer.lists.publisher import TRUST_LIST, etag_of
from issuer.settings import Settings
from issuer.storage import PublishedList, Storage
from suishenma import (
    SigningKey,
    TrustList,
    load_verification_key,
    parse_trust_list,
    passphrase_from_env,
    sign_trust_list,
)


def make_request(
    settings: Settings, storage: Storage, now: int, warn: Callable[[str, KeyUnusable], None] = lambda kid, exc: None
) -> dict[str, Any]:
    """The next trust list's content for this issuer, with a proof that the holder of its current signing
    key made it, vouched for by this issuer's keys that the held trust list names (federation.py).

    An older key whose file no longer opens cannot vouch: ``warn(kid, error)`` is told and the request is made
    without it (the root's operator then confirms the new key with ``--expect``).

    Raises:
        KeyUnusable: the active signing key's file is damaged, or does not open with the passphrase.
        KeyFileError: a public key file (keys/root.pub, a signing key's) is missing or damaged.
        NoSigningKey: no signing key recorded.
        ListError: the held trust list does not verify against keys/root.pub.
    """
    held = storage.list_get(TRUST_LIST)
    request = {
        "issuer": settings.issuer_id,
        "public_url": settings.public_url,
        "version": (held.version if held else 0) + 1,
        "ttl": settings.trust_list_ttl,
        "entries": [entry_to_json(e) for e in trust_entries(settings, storage, now)],
    }
    active = load_active_key(settings, storage)
    return add_proof(request, active.key, _vouchers(settings, storage, held, active.record.kid, warn))


def _vouchers(
    settings: Settings,
    storage: Storage,
    held: PublishedList | None,
    active: str,
    warn: Callable[[str, KeyUnusable], None],
) -> list[SigningKey]:
    """This issuer's keys, other than the active one, that the held trust list names for it and whose private
    key is still here and opens: after a rotation, they vouch for the new key to the root. A missing file is
    skipped silently (retired keys' files may be removed); one that is damaged or does not open is skipped
    and passed to ``warn``.

    Raises:
        KeyFileError: keys/root.pub is missing or damaged.
        ListError: the held list does not verify against it.
    """
    if held is None:
        return []
    root = load_verification_key(settings.keys_path / f"{ROOT_KEY}.pub")
    # as of its own issue time: an expired list still says which keys the root trusted for this issuer
    trusted = parse_trust_list(held.body, root, now=held.issued_at).keys_for(settings.issuer_id)
    passphrase = passphrase_from_env()
    vouchers = []
    for rec in storage.signing_keys():
        if rec.kid == active or bytes.fromhex(rec.kid) not in trusted:
            continue
        try:
            vouchers.append(open_signing_key(settings, rec.path, passphrase, THE_SIGNING_KEY))
        except KeyUnusable as exc:
            if exc.problem is not Problem.KEY_FILE_MISSING:
                warn(rec.kid, exc)
    return vouchers


@dataclass(frozen=True)
class SigningPlan:
    """What ``trust-list sign`` is about to sign: the merged requests, the version, and each region's key ids
    with their standing (``federation.KeyStanding``)."""

    merged: MergedRequests
    version: int
    keys: dict[str, dict[str, KeyStanding]]
    vouchers: dict[str, str]  # region -> the kid, listed in the list in force, that vouched for its new keys


def plan_signing(
    merged: MergedRequests, current: TrustList | None, expect: Mapping[str, Collection[str]]
) -> SigningPlan:
    """The list the requests ask for, above ``current`` (the list in force, verified against the root by the
    caller; None for the first), with the standing of every key.

    A region that ``current`` lists must ask for the version right after it: a request for ``current``'s
    version or below was made before the region imported the list in force (an old request, replayed or
    left over, whose keys may have been retired since), and one further ahead means ``current`` is not the
    list in force, so what it vouches for proves nothing.

    Raises:
        InputError: a request is older than ``current`` (``trust_list_request_stale``), ``current`` is older
            than a request shows (``trust_list_current_outdated``), or ``expect`` names a key no request holds
            (``federation.key_standing``).
    """
    if current is not None:
        for region in merged.regions:
            if not current.keys_for(region.issuer):
                continue  # a region joining: it has never held a list of this root
            asked = int(region.body["version"])
            if asked <= current.version:
                raise InputError(
                    Problem.TRUST_LIST_REQUEST_STALE, path=region.path, version=asked, current=current.version
                )
            if asked > current.version + 1:
                raise InputError(
                    Problem.TRUST_LIST_CURRENT_OUTDATED, path=region.path, version=asked, current=current.version
                )
    version = max(merged.version, current.version + 1 if current else 1)
    vouchers = {}
    for region in merged.regions:
        kid = voucher_of(region, current)
        if kid is not None:
            vouchers[region.issuer] = kid
    return SigningPlan(merged, version, key_standing(merged, current, expect), vouchers)


def sign_plan(plan: SigningPlan, root: SigningKey, now: int) -> bytes:
    """Sign the planned list, once every key is confirmed.

    Raises:
        InputError: a key is not confirmed (``trust_list_key_unconfirmed``).
        UsageError: too many issuers.
    """
    require_confirmed(plan.keys)
    return sign_trust_list(plan.merged.entries, root, version=plan.version, now=now, ttl=plan.merged.ttl)


def import_signed(settings: Settings, storage: Storage, body: bytes, now: int, actor: str) -> PublishedList:
    """Publish a trust list signed elsewhere.

    Raises:
        ListError: not signed by the pinned root, malformed or expired.
        Conflict: not newer than the held list, or it does not list the current signing key.
        KeyFileError: keys/root.pub is missing.
    """
    trust = parse_trust_list(body, load_verification_key(settings.keys_path / f"{ROOT_KEY}.pub"), now=now)
    held = storage.list_get(TRUST_LIST)
    if held is not None and trust.version <= held.version:
        raise Conflict(Problem.TRUST_LIST_VERSION_NOT_ABOVE, version=trust.version, held=held.version)
    check_own_entries(settings, trust, trust_entries(settings, storage, now))
    current = active_record(storage).kid
    if current not in {e.key.kid.hex() for e in trust.issuers}:
        raise Conflict(Problem.TRUST_LIST_LACKS_CURRENT_KEY, kid=current)
    lst = PublishedList(TRUST_LIST, trust.version, body, etag_of(body), trust.issued_at, trust.expires_at, 0)
    storage.list_put(lst, actor)
    return lst
