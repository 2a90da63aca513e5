"""Several regions' issuers under one shared root (DESIGN §3): who this issuer is, joining a root, and one
trust list signed for every region.

1. Each region: ``init --issuer-id JS --root-pub ROOT.pub`` (no root key is made here; the id is kept in
   ``var/identity.json`` so that later commands and ``serve`` are that region without repeating it).
2. Each region: ``trust-list request --out JS.json`` with ``public_url`` set: its keys, where its status
   list lives (an absolute URL), a proof that the holder of its current signing key made the request, and,
   after a key rotation, the same signature by each of its keys that the trust list it holds names for it
   (``vouched_by``): the region's key already trusted vouches for the new one.
3. Offline: ``trust-list sign --request SH.json --request JS.json ... --root-key ROOT.key --out trust.cwt``
   checks every request and signs one list for all of them (leave a request out to remove a region). A
   request's own proof shows only that whoever wrote it holds the keys it lists, which anyone who swaps in a
   key of their own does too; so every key must also be confirmed (``KeyStanding``): already listed for its
   region in the list in force (``--current trust.cwt``), vouched for by such a key, or confirmed by the
   root's operator with ``--expect JS=KID`` after checking the kid with the region out of band.
4. Each region: ``trust-list import trust.cwt``, then serves it; a kiosk set up against any one region
   syncs every region's status list from the URL its entry names, trusting signatures, not hosts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from issuer.errors import CATALOGUE, Conflict, InputError, Problem, SettingsError
from issuer.files import private_dir, write_private
from issuer.settings import Settings
from suishenma import (
    Alg,
    CodeType,
    IssuerEntry,
    SigningKey,
    SuishenmaError,
    TrustList,
    VerificationKey,
    load_verification_key,
)

IDENTITY_FILE = Path("var/identity.json")
MAX_REQUEST_BYTES = 1 << 20
PROOF_CONTEXT = b"suishenma trust-list request v1\0"  # domain separation: this signature means nothing else
SIGNATURES = ("proof", "vouched_by")  # what the signatures cover leaves them out


# who this issuer is
def identity_path(settings: Settings) -> Path:
    return settings.path(IDENTITY_FILE)


def remember_identity(settings: Settings) -> None:
    """Keep the issuer id chosen at ``init`` beside the database (written once, atomically), in var/, which
    is made 0700 when missing (with PostgreSQL no database file makes it first).

    Raises:
        OSError: the folder or the file cannot be written.
    """
    path = identity_path(settings)
    if path.exists():
        return
    private_dir(path.parent)
    write_private(path, (json.dumps({"issuer_id": settings.issuer_id}) + "\n").encode())


def with_identity(settings: Settings) -> Settings:
    """``settings`` with the issuer id this folder was initialised with, unless one was given explicitly.

    Raises:
        SettingsError: the id given (argument, environment or settings file) is not this folder's, or the
            identity file is damaged.
    """
    path = identity_path(settings)
    if not path.exists():
        return settings
    try:
        kept = json.loads(path.read_text("utf-8"))["issuer_id"]
        if not isinstance(kept, str) or not kept:
            raise ValueError(kept)
    except (OSError, ValueError, KeyError, TypeError):
        raise SettingsError([CATALOGUE[Problem.IDENTITY_FILE_DAMAGED].format(path=path)]) from None
    if "issuer_id" not in settings.model_fields_set:
        return settings.model_copy(update={"issuer_id": kept})
    if settings.issuer_id != kept:
        raise SettingsError(
            [CATALOGUE[Problem.FOLDER_OF_ANOTHER_ISSUER].format(kept=kept, path=path, given=settings.issuer_id)]
        )
    return settings


def join_root(settings: Settings, root_pub: Path) -> Path:
    """Pin an existing (offline) root's public key as keys/root.pub; no root key is made here.

    Raises:
        KeyFileError: ``root_pub`` is not a public key.
        Conflict: this folder already keeps a root private key, or pins another root.
    """
    root = load_verification_key(root_pub)
    keys = settings.keys_path
    if (keys / "root.key").exists():
        raise Conflict(Problem.OWN_ROOT_EXISTS, path=keys / "root.key")
    pinned = keys / "root.pub"
    if pinned.exists():
        if load_verification_key(pinned).kid != root.kid:
            raise Conflict(Problem.ANOTHER_ROOT_PINNED, path=pinned)
        return pinned
    private_dir(keys)
    shutil.copyfile(root_pub, pinned)
    return pinned


# requests
def _canonical(request: dict[str, Any]) -> bytes:
    body = {k: v for k, v in request.items() if k not in SIGNATURES}
    return PROOF_CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signature(request: dict[str, Any], key: SigningKey) -> dict[str, str]:
    return {"kid": key.kid.hex(), "signature": key.cose_key.sign(_canonical(request)).hex()}


def add_proof(request: dict[str, Any], key: SigningKey, vouchers: Sequence[SigningKey] = ()) -> dict[str, Any]:
    """The request with ``proof``: the current signing key's signature over everything else in it; and with
    ``vouched_by``: the same signature by each of ``vouchers`` (the issuer's keys that the trust list it
    holds already names), which lets the root accept keys that list does not name yet."""
    signed = {**request, "proof": _signature(request, key)}
    if vouchers:
        signed["vouched_by"] = [_signature(request, v) for v in vouchers]
    return signed


def entry_to_json(e: IssuerEntry) -> dict[str, Any]:
    return {
        "issuer": e.issuer,
        "kid": e.key.kid.hex(),
        "alg": e.key.alg.name,
        "public_key": e.key.pem().decode(),
        "valid_from": e.valid_from,
        "valid_until": e.valid_until,
        "code_types": sorted(t.name.lower() for t in e.code_types),
        "status_uri": e.status_uri,
        "previous_forms_until": e.previous_forms_until,
        "slot": e.slot,
        "timestamp_uri": e.timestamp_uri,
    }


def _entry(e: dict[str, Any]) -> IssuerEntry:
    """Raises: InputError (a key that does not match its kid); KeyError, TypeError, ValueError (malformed)."""
    key = VerificationKey.from_pem(e["public_key"].encode(), Alg[e["alg"]])
    if key.kid.hex() != e["kid"]:
        raise InputError(Problem.REQUEST_KID_MISMATCH, kid=e["kid"], actual=key.kid.hex())
    types = frozenset(CodeType[t.upper()] for t in e["code_types"])
    uri = e["status_uri"]
    if uri is not None and not isinstance(uri, str):
        raise TypeError("status_uri")
    until, slot = e.get("previous_forms_until"), e.get("slot")  # absent from requests of earlier versions
    stamp = e.get("timestamp_uri")
    if stamp is not None and not isinstance(stamp, str):
        raise TypeError("timestamp_uri")
    return IssuerEntry(
        key,
        str(e["issuer"]),
        int(e["valid_from"]),
        int(e["valid_until"]),
        types,
        uri,
        None if until is None else int(until),
        None if slot is None else int(slot),
        stamp,
    )


def read_request(path: Path) -> tuple[dict[str, Any], list[IssuerEntry]]:
    """A request file checked on its own: its entries, all of one issuer, and its proof of possession.

    Raises:
        InputError: too large, not a request, a key that does not match its kid, entries of several
            issuers, or a proof missing or not made by one of the request's own keys (a tampered file).
    """
    if path.stat().st_size > MAX_REQUEST_BYTES:
        raise InputError(Problem.REQUEST_TOO_LARGE, path=path)
    try:
        req = json.loads(path.read_text("utf-8"))
        entries = [_entry(e) for e in req["entries"]]
        int(req["version"]), int(req["ttl"])
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, SuishenmaError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(Problem.NOT_A_REQUEST, path=path, error=repr(exc)) from None
    issuers = {e.issuer for e in entries}
    if not entries or len(issuers) != 1 or req.get("issuer", entries[0].issuer) not in issuers:
        raise InputError(Problem.REQUEST_NOT_ONE_ISSUER, path=path, issuers=sorted(issuers))
    proof = req.get("proof")
    keys = {e.key.kid.hex(): e.key for e in entries}
    try:
        keys[proof["kid"]].verify_signature(_canonical(req), bytes.fromhex(proof["signature"]))
    except (KeyError, TypeError, ValueError, SuishenmaError):
        raise InputError(Problem.REQUEST_ALTERED, path=path) from None
    return req, entries


@dataclass(frozen=True)
class RegionRequest:
    """One region's request, checked on its own (``read_request``)."""

    path: Path
    issuer: str
    body: dict[str, Any]
    entries: list[IssuerEntry]


@dataclass(frozen=True)
class MergedRequests:
    """Every region's request, and the entries, version and ttl of the one list that holds them all."""

    regions: list[RegionRequest]
    entries: list[IssuerEntry]
    version: int
    ttl: int


def merge_requests(paths: list[Path]) -> MergedRequests:
    """The entries, version and ttl of one list for every region's request.

    The version is the highest any request asks for (each asks for one above the list it holds), the ttl
    the shortest. With several regions every status URI must be absolute: a relative one would be
    resolved against whichever region's host a kiosk syncs from.

    Raises:
        InputError: a request is unusable (see ``read_request``), two requests are for the same issuer
            (a duplicated file, or an issuer id already present), a key appears twice, or a status URI of
            a federated list is not an absolute http(s) URL.
    """
    seen: dict[str, Path] = {}
    regions: list[RegionRequest] = []
    entries: list[IssuerEntry] = []
    version, ttl = 0, 0
    for path in paths:
        req, mine = read_request(path)
        issuer = mine[0].issuer
        if issuer in seen:
            raise InputError(Problem.REQUEST_REPEATS_ISSUER, path=path, issuer=issuer, other=seen[issuer])
        seen[issuer] = path
        kids = {e.key.kid for e in entries}
        if any(e.key.kid in kids for e in mine):
            raise InputError(Problem.REQUEST_REPEATS_KEY, path=path)
        regions.append(RegionRequest(path, issuer, req, mine))
        entries += mine
        version, ttl = max(version, int(req["version"])), min(ttl or int(req["ttl"]), int(req["ttl"]))
    if len(seen) > 1:
        for e in entries:
            for uri in (e.status_uri, *([e.timestamp_uri] if e.timestamp_uri else [])):
                parts = urlsplit(uri or "")
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise InputError(Problem.STATUS_URI_NOT_ABSOLUTE, issuer=e.issuer, uri=uri)
    return MergedRequests(regions, entries, version, ttl)


# confirming each region's keys
class KeyStanding(StrEnum):
    """Why the root may sign a key of a region's request, or that it may not."""

    LISTED = "listed"  # the list in force already names it for that region
    VOUCHED = "vouched"  # new, and the request is signed by a key the list in force names for that region
    EXPECTED = "expected"  # new, and the root's operator confirmed its kid (``--expect REGION=KID``)
    UNCONFIRMED = "unconfirmed"  # new, and nothing above: refused


def _trusted(region: RegionRequest, current: TrustList | None) -> dict[str, VerificationKey]:
    """The keys (by kid in hex) the list in force names for the region; none for a first list."""
    return {kid.hex(): key for kid, key in (current.keys_for(region.issuer) if current else {}).items()}


def _voucher(region: RegionRequest, trusted: Mapping[str, VerificationKey]) -> str | None:
    """The kid of the first of the request's signatures made by a key ``trusted`` (from the list in force,
    never from the request) names for the region, or None."""
    vouchers = region.body.get("vouched_by")
    signatures = [region.body.get("proof"), *(vouchers if isinstance(vouchers, list) else [])]
    for signature in signatures:
        try:
            kid = signature["kid"]
            trusted[kid].verify_signature(_canonical(region.body), bytes.fromhex(signature["signature"]))
        except (KeyError, TypeError, ValueError, SuishenmaError):
            continue
        return str(kid)
    return None


def voucher_of(region: RegionRequest, current: TrustList | None) -> str | None:
    """The kid of a key the list in force names for the region that signed its request, or None."""
    return _voucher(region, _trusted(region, current))


def key_standing(
    merged: MergedRequests, current: TrustList | None, expect: Mapping[str, Collection[str]]
) -> dict[str, dict[str, KeyStanding]]:
    """Each region's key ids and their standing (``KeyStanding``), for the root's operator to see.

    ``current`` is the trust list in force (verified against the root by the caller), None for a first
    list; ``expect`` the kids (hex) the operator confirmed, by region.

    Raises:
        InputError: ``expect`` names a region or a kid that no request holds (what the region reported out
            of band is not what is being signed).
    """
    standing: dict[str, dict[str, KeyStanding]] = {}
    for region in merged.regions:
        trusted = _trusted(region, current)
        vouched = _voucher(region, trusted) is not None
        confirmed = {kid.lower() for kid in expect.get(region.issuer, ())}
        mine = standing[region.issuer] = {}
        for e in region.entries:
            kid = e.key.kid.hex()
            if kid in trusted:
                mine[kid] = KeyStanding.LISTED
            elif vouched:
                mine[kid] = KeyStanding.VOUCHED
            elif kid in confirmed:
                mine[kid] = KeyStanding.EXPECTED
            else:
                mine[kid] = KeyStanding.UNCONFIRMED
    for issuer, kids in expect.items():
        for kid in sorted(k.lower() for k in kids):
            if kid not in standing.get(issuer, {}):
                raise InputError(Problem.EXPECTED_KEY_NOT_REQUESTED, issuer=issuer, kid=kid)
    return standing


def require_confirmed(standing: Mapping[str, Mapping[str, KeyStanding]]) -> None:
    """Raises: InputError (``trust_list_key_unconfirmed``): a key is new and nobody confirmed it; the message
    names every such key as the ``--expect`` argument that would confirm them."""
    pending = [f"{i}={kid}" for i, kids in standing.items() for kid, s in kids.items() if s is KeyStanding.UNCONFIRMED]
    if pending:
        raise InputError(Problem.TRUST_LIST_KEY_UNCONFIRMED, keys=",".join(pending))


def check_own_entries(settings: Settings, trust: TrustList, own: list[IssuerEntry]) -> None:
    """Before importing: the list must say where this issuer's status list is exactly as this issuer would.

    Raises:
        Conflict: it gives this issuer's id a status URI this issuer does not publish.
    """
    uris = {e.status_uri for e in own}
    for e in trust.issuers:
        if e.issuer == settings.issuer_id and e.status_uri not in uris:
            raise Conflict(
                Problem.STATUS_URI_MISMATCH, issuer=e.issuer, uri=e.status_uri, ours=sorted(u or "" for u in uris)
            )
