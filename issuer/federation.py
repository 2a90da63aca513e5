"""Several regions' issuers under one shared root (DESIGN §3): who this issuer is, joining a root, and one
trust list signed for every region.

1. Each region: ``init --issuer-id JS --root-pub ROOT.pub`` (no root key is made here; the id is kept in
   ``var/identity.json`` so that later commands and ``serve`` are that region without repeating it).
2. Each region: ``trust-list request --out JS.json`` with ``public_url`` set: its keys, where its status
   list lives (an absolute URL), and a proof that the holder of its current signing key made the request.
3. Offline: ``trust-list sign --request SH.json --request JS.json ... --root-key ROOT.key --out trust.cwt``
   checks every request and signs one list for all of them (leave a request out to remove a region).
4. Each region: ``trust-list import trust.cwt``, then serves it; a kiosk set up against any one region
   syncs every region's status list from the URL its entry names, trusting signatures, not hosts.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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

from .problems import InputError
from .settings import Settings, SettingsError
from .storage import Conflict

IDENTITY_FILE = Path("var/identity.json")
MAX_REQUEST_BYTES = 1 << 20
PROOF_CONTEXT = b"suishenma trust-list request v1\0"  # domain separation: this signature means nothing else


# who this issuer is
def identity_path(settings: Settings) -> Path:
    return settings.path(IDENTITY_FILE)


def remember_identity(settings: Settings) -> None:
    """Keep the issuer id chosen at ``init`` beside the database (written once, atomically)."""
    path = identity_path(settings)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"issuer_id": settings.issuer_id}) + "\n", "utf-8")
    os.replace(tmp, path)


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
        raise SettingsError([(f'{path} 已损坏：应为 {{"issuer_id": "…"}}', f"{path} is damaged")]) from None
    if "issuer_id" not in settings.model_fields_set:
        return settings.model_copy(update={"issuer_id": kept})
    if settings.issuer_id != kept:
        raise SettingsError(
            [
                (
                    f"此文件夹属于签发方 {kept}（见 {path}），而设置给出的是 {settings.issuer_id}",
                    f"this folder belongs to issuer {kept} (see {path}), but the settings say {settings.issuer_id}",
                )
            ]
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
        raise Conflict(
            f"{keys / 'root.key'} exists: this issuer has its own development root",
            f"{keys / 'root.key'} 已存在：此签发方有自己的开发根密钥",
        )
    pinned = keys / "root.pub"
    if pinned.exists():
        if load_verification_key(pinned).kid != root.kid:
            raise Conflict(f"{pinned} pins another root", f"{pinned} 固定的是另一个根密钥")
        return pinned
    keys.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root_pub, pinned)
    return pinned


# requests
def _canonical(request: dict[str, Any]) -> bytes:
    body = {k: v for k, v in request.items() if k != "proof"}
    return PROOF_CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def add_proof(request: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """The request with ``proof``: the current signing key's signature over everything else in it."""
    signature = key.cose_key.sign(_canonical(request))
    return {**request, "proof": {"kid": key.kid.hex(), "signature": signature.hex()}}


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
    }


def _entry(e: dict[str, Any]) -> IssuerEntry:
    """Raises: InputError (a key that does not match its kid); KeyError, TypeError, ValueError (malformed)."""
    key = VerificationKey.from_pem(e["public_key"].encode(), Alg[e["alg"]])
    if key.kid.hex() != e["kid"]:
        raise InputError(
            f"entry {e['kid']}: the public key's kid is {key.kid.hex()}",
            f"条目 {e['kid']}：其公钥的 kid 是 {key.kid.hex()}",
        )
    types = frozenset(CodeType[t.upper()] for t in e["code_types"])
    uri = e["status_uri"]
    if uri is not None and not isinstance(uri, str):
        raise TypeError("status_uri")
    return IssuerEntry(key, str(e["issuer"]), int(e["valid_from"]), int(e["valid_until"]), types, uri)


def read_request(path: Path) -> tuple[dict[str, Any], list[IssuerEntry]]:
    """A request file checked on its own: its entries, all of one issuer, and its proof of possession.

    Raises:
        InputError: too large, not a request, a key that does not match its kid, entries of several
            issuers, or a proof missing or not made by one of the request's own keys (a tampered file).
    """
    if path.stat().st_size > MAX_REQUEST_BYTES:
        raise InputError(f"{path} is larger than any trust-list request", f"{path} 比任何信任列表请求都大")
    try:
        req = json.loads(path.read_text("utf-8"))
        entries = [_entry(e) for e in req["entries"]]
        int(req["version"]), int(req["ttl"])
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, SuishenmaError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path} is not a trust-list request: {exc!r}", f"{path} 不是信任列表请求：{exc!r}") from None
    issuers = {e.issuer for e in entries}
    if not entries or len(issuers) != 1 or req.get("issuer", entries[0].issuer) not in issuers:
        raise InputError(
            f"{path}: a request lists the keys of exactly one issuer (found {sorted(issuers)})",
            f"{path}：一份请求只能列出一个签发方的密钥（此处为 {sorted(issuers)}）",
        )
    proof = req.get("proof")
    keys = {e.key.kid.hex(): e.key for e in entries}
    try:
        keys[proof["kid"]].verify_signature(_canonical(req), bytes.fromhex(proof["signature"]))
    except (KeyError, TypeError, ValueError, SuishenmaError):
        raise InputError(
            f"{path} was changed after its issuer made it (its proof does not verify with the request's own keys):"
            " ask that region for a new `trust-list request`",
            f"{path} 在签发方生成后被改动过（其证明无法用请求中的密钥验证）：请该地区重新运行 `trust-list request`",
        ) from None
    return req, entries


def merge_requests(paths: list[Path]) -> tuple[list[IssuerEntry], int, int]:
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
    entries: list[IssuerEntry] = []
    version, ttl = 0, 0
    for path in paths:
        req, mine = read_request(path)
        issuer = mine[0].issuer
        if issuer in seen:
            raise InputError(
                f"{path} is for issuer {issuer}, already present from {seen[issuer]}: one request per region",
                f"{path} 属于签发方 {issuer}，而 {seen[issuer]} 已含该签发方：每个地区只能有一份请求",
            )
        seen[issuer] = path
        kids = {e.key.kid for e in entries}
        if any(e.key.kid in kids for e in mine):
            raise InputError(f"{path} repeats a key of another request", f"{path} 重复了另一份请求中的密钥")
        entries += mine
        version, ttl = max(version, int(req["version"])), min(ttl or int(req["ttl"]), int(req["ttl"]))
    if len(seen) > 1:
        for e in entries:
            parts = urlsplit(e.status_uri or "")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InputError(
                    f"issuer {e.issuer}: status list URI {e.status_uri!r} is not absolute; set public_url"
                    " (SUISHENMA_ISSUER_PUBLIC_URL) on that issuer and make its request again",
                    f"签发方 {e.issuer}：状态列表地址 {e.status_uri!r} 不是完整网址；请在该签发方设置 public_url"
                    "（SUISHENMA_ISSUER_PUBLIC_URL）后重新生成请求",
                )
    return entries, version, ttl


def check_own_entries(settings: Settings, trust: TrustList, own: list[IssuerEntry]) -> None:
    """Before importing: the list must say where this issuer's status list is exactly as this issuer would.

    Raises:
        Conflict: it gives this issuer's id a status URI this issuer does not publish.
    """
    uris = {e.status_uri for e in own}
    for e in trust.issuers:
        if e.issuer == settings.issuer_id and e.status_uri not in uris:
            raise Conflict(
                f"the list says issuer {e.issuer} publishes its status list at {e.status_uri!r}, but this issuer"
                f" publishes it at {sorted(u or '' for u in uris)}: check public_url and make a new request",
                f"该列表称签发方 {e.issuer} 的状态列表位于 {e.status_uri!r}，而本签发方发布于"
                f" {sorted(u or '' for u in uris)}：请检查 public_url 并重新生成请求",
            )
