"""Signing the trust list with a root key that never touches the issuer host.

1. On the issuer: ``trust-list request --out request.json`` writes what the next list must hold.
2. On the offline machine: ``trust-list sign --request request.json --root-key root.key --out trust.cwt``
   (no database needed there).
3. Back on the issuer: ``trust-list import trust.cwt`` checks it against the pinned ``keys/root.pub``
   (signature, not expired, version above the held one, the current signing key listed) and publishes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from suishenma import (
    Alg,
    CodeType,
    IssuerEntry,
    SigningKey,
    VerificationKey,
    load_verification_key,
    parse_trust_list,
    sign_trust_list,
)

from .keystore import ROOT_KEY, active_record, trust_entries
from .problems import InputError
from .publish import TRUST_LIST, etag_of
from .settings import Settings
from .storage import Conflict, PublishedList, Storage

MAX_REQUEST_BYTES = 1 << 20


def make_request(settings: Settings, storage: Storage, now: int) -> dict[str, Any]:
    """The next trust list's content, for the offline signer. Raises: KeyFileError."""
    held = storage.list_get(TRUST_LIST)
    return {
        "version": (held.version if held else 0) + 1,
        "ttl": settings.trust_list_ttl,
        "entries": [
            {
                "issuer": e.issuer,
                "kid": e.key.kid.hex(),
                "alg": e.key.alg.name,
                "public_key": e.key.pem().decode(),
                "valid_from": e.valid_from,
                "valid_until": e.valid_until,
                "code_types": sorted(t.name.lower() for t in e.code_types),
                "status_uri": e.status_uri,
            }
            for e in trust_entries(settings, storage, now)
        ],
    }


def sign_request(path: Path, root: SigningKey, now: int) -> bytes:
    """Sign the list a request describes; each key must match its stated kid.

    Raises:
        ValueError: the request is malformed, too large, or a kid does not match its key.
    """
    if path.stat().st_size > MAX_REQUEST_BYTES:
        raise InputError(f"{path} is larger than any trust-list request", f"{path} 比任何信任列表请求都大")
    try:
        req = json.loads(path.read_text("utf-8"))
        entries = []
        for e in req["entries"]:
            key = VerificationKey.from_pem(e["public_key"].encode(), Alg[e["alg"]])
            if key.kid.hex() != e["kid"]:
                raise InputError(
                    f"entry {e['kid']}: the public key's kid is {key.kid.hex()}",
                    f"条目 {e['kid']}：其公钥的 kid 是 {key.kid.hex()}",
                )
            types = frozenset(CodeType[t.upper()] for t in e["code_types"])
            entries.append(
                IssuerEntry(key, e["issuer"], int(e["valid_from"]), int(e["valid_until"]), types, e["status_uri"])
            )
        return sign_trust_list(entries, root, version=int(req["version"]), now=now, ttl=int(req["ttl"]))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a trust-list request: {exc!r}", f"{path} 不是信任列表请求：{exc!r}") from None


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
        raise Conflict(
            f"version {trust.version} is not above the published {held.version}",
            f"版本 {trust.version} 不高于已发布的版本 {held.version}",
        )
    current = active_record(storage).kid
    if current not in {e.key.kid.hex() for e in trust.issuers}:
        raise Conflict(
            f"the list does not include the current signing key {current}",
            f"该列表不包含当前签名密钥 {current}",
        )
    lst = PublishedList(TRUST_LIST, trust.version, body, etag_of(body), trust.issued_at, trust.expires_at, 0)
    storage.list_put(lst, actor)
    return lst
