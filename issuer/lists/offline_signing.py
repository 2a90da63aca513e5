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

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from issuer.errors import THE_SIGNING_KEY, Conflict, KeyUnusable, Problem
from issuer.keys.signing_keys import ROOT_KEY, active_record, load_active_key, load_private_key, trust_entries
from issuer.lists.federation import (
    KeyStanding,
    MergedRequests,
    add_proof,
    check_own_entries,
    entry_to_json,
    key_standing,
    require_confirmed,
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


def make_request(settings: Settings, storage: Storage, now: int) -> dict[str, Any]:
    """The next trust list's content for this issuer, with a proof that the holder of its current signing
    key made it, vouched for by this issuer's keys that the held trust list names (federation.py).

    Raises:
        KeyUnusable: a private key file is damaged, or does not open with the passphrase.
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
    return add_proof(request, active.key, _vouchers(settings, storage, held, active.record.kid))


def _vouchers(settings: Settings, storage: Storage, held: PublishedList | None, active: str) -> list[SigningKey]:
    """This issuer's keys, other than the active one, that the held trust list names for it and whose private
    key is still here: after a rotation, they vouch for the new key to the root.

    Raises:
        KeyUnusable: such a key's file is damaged or does not open (a missing one is skipped).
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
            vouchers.append(load_private_key(settings.keys_path / rec.path, passphrase, THE_SIGNING_KEY))
        except KeyUnusable as exc:
            if exc.problem is not Problem.KEY_FILE_MISSING:
                raise
    return vouchers


@dataclass(frozen=True)
class SigningPlan:
    """What ``trust-list sign`` is about to sign: the merged requests, the version, and each region's key ids
    with their standing (``federation.KeyStanding``)."""

    merged: MergedRequests
    version: int
    keys: dict[str, dict[str, KeyStanding]]


def plan_signing(
    merged: MergedRequests, current: TrustList | None, expect: Mapping[str, Collection[str]]
) -> SigningPlan:
    """The list the requests ask for, above ``current`` (the list in force, verified against the root by the
    caller; None for the first), with the standing of every key.

    Raises:
        InputError: ``expect`` names a key no request holds (``federation.key_standing``).
    """
    version = max(merged.version, current.version + 1 if current else 1)
    return SigningPlan(merged, version, key_standing(merged, current, expect))


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
