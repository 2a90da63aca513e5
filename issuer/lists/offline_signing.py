"""Signing the trust list with a root key that never touches the issuer host.

1. On the issuer: ``trust-list request --out request.json`` writes what the next list must hold.
2. On the offline machine: ``trust-list sign --request request.json --root-key root.key --out trust.cwt``
   (no database needed there); one ``--request`` per region signs a federated list (federation.py).
3. Back on the issuer: ``trust-list import trust.cwt`` checks it against the pinned ``keys/root.pub``
   (signature, not expired, version above the held one, the current signing key listed) and publishes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from issuer.errors import Conflict, Problem
from issuer.keys.signing_keys import ROOT_KEY, active_record, load_active_key, trust_entries
from issuer.lists.federation import add_proof, check_own_entries, entry_to_json, merge_requests
from issuer.lists.publisher import TRUST_LIST, etag_of
from issuer.settings import Settings
from issuer.storage import PublishedList, Storage
from suishenma import IssuerEntry, SigningKey, load_verification_key, parse_trust_list, sign_trust_list


def make_request(settings: Settings, storage: Storage, now: int) -> dict[str, Any]:
    """The next trust list's content for this issuer, with a proof that the holder of its current signing
    key made it (federation.py). Raises: KeyFileError, NoSigningKey."""
    held = storage.list_get(TRUST_LIST)
    request = {
        "issuer": settings.issuer_id,
        "public_url": settings.public_url,
        "version": (held.version if held else 0) + 1,
        "ttl": settings.trust_list_ttl,
        "entries": [entry_to_json(e) for e in trust_entries(settings, storage, now)],
    }
    return add_proof(request, load_active_key(settings, storage).key)


def sign_request(paths: list[Path], root: SigningKey, now: int) -> tuple[bytes, list[IssuerEntry], int]:
    """Sign one trust list for the regions the requests describe: (the list, its entries, its version).

    Raises:
        InputError: a request is malformed, too large, tampered with, or repeats an issuer or a key (see
            ``federation.merge_requests``).
    """
    entries, version, ttl = merge_requests(paths)
    return sign_trust_list(entries, root, version=version, now=now, ttl=ttl), entries, version


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
