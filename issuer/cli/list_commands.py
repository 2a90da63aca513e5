"""``trust-list request|sign|import|publish``: the trust list and the offline root."""

from __future__ import annotations

import argparse
import json
import re
import time

from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import print_error, print_json, print_warning
from issuer.errors import InputError, KeyUnusable, Problem
from issuer.keys.signing_keys import root_signing_key
from issuer.lists.federation import KeyStanding, merge_requests
from issuer.lists.offline_signing import import_signed, make_request, plan_signing, sign_plan
from issuer.settings import Settings
from suishenma import ListError, Reason, SigningKey, TrustList, load_signing_key, parse_trust_list, passphrase_from_env

_KID = re.compile(r"(?:[0-9a-f]{2}){1,32}")
# How ``trust-list sign`` shows each key it is about to sign, for the operator to compare.
STANDING = {
    KeyStanding.LISTED: "已在现行信任列表中 / listed in the trust list in force",
    KeyStanding.VOUCHED: "新密钥，由该地区已受信任的密钥作保 / new, vouched for by the region's trusted key",
    KeyStanding.EXPECTED: "新密钥，已由 --expect 确认 / new, confirmed with --expect",
    KeyStanding.UNCONFIRMED: "新密钥，未确认 / new, NOT confirmed",
}


def expected_keys(text: str) -> list[tuple[str, str]]:
    """``--expect SH=KID,JS=KID2``: (region, kid) pairs, a kid in hex as ``trust-list sign`` prints it.

    Raises:
        argparse.ArgumentTypeError: an item is not REGION=KID.
    """
    pairs = []
    for item in text.split(","):
        issuer, sep, kid = (part.strip() for part in item.partition("="))
        if not sep or not issuer or not _KID.fullmatch(kid.lower()):
            raise argparse.ArgumentTypeError(
                f"{item!r} is not REGION=KID (the kid in hex, as `trust-list sign` prints)"
            )
        pairs.append((issuer, kid.lower()))
    return pairs


def cmd_trust_list(settings: Settings, args: argparse.Namespace) -> int:
    now = int(time.time())
    if args.action == "sign" and (args.request or args.expect or args.current):
        return _sign_offline(args, now)
    with open_service(settings) as service:
        if args.action == "request":
            request = make_request(settings, service.storage, now, _cannot_vouch)
            args.out.write_text(json.dumps(request, indent=2) + "\n", "utf-8")
            if args.json:
                print_json({"out": str(args.out), "version": request["version"]})
            else:
                print(f"request for trust list version {request['version']} written to {args.out}")
            return 0
        if args.action == "import":
            lst = import_signed(settings, service.storage, args.file.read_bytes(), now, CLI_ACTOR)
        elif root_signing_key(settings) is None:
            print_error(
                "此处没有 keys/root.key：请先运行 `trust-list request`，离线签名后再 `import`",
                "no keys/root.key here: use `trust-list request`, sign offline, then `import`",
            )
            return 1
        else:
            lst = service.publisher.trust_list(now, force=True, actor=CLI_ACTOR)
    if args.json:
        print_json({"version": lst.version, "issued_at": lst.issued_at, "expires_at": lst.expires_at})
    else:
        print(f"trust list version {lst.version} published, expires at {lst.expires_at}")
    return 0


def _cannot_vouch(kid: str, exc: KeyUnusable) -> None:
    print_warning(
        f"旧密钥 {kid} 无法为新密钥作保（{exc.message_zh}）；请求照常生成，根密钥持有人需用 --expect 确认新密钥",
        f"old key {kid} cannot vouch for the new key ({exc.message_en}); the request is made without it, and the"
        " root's operator must confirm the new key with --expect",
    )


def _current_list(body: bytes, root: SigningKey, now: int) -> TrustList:
    """``--current``: the list in force, signed by this root and not expired.

    Raises:
        ListError: not signed by this root, or malformed.
        InputError: expired (``trust_list_current_expired``): it no longer says what the root trusts.
    """
    try:
        return parse_trust_list(body, root.public(), now=now)
    except ListError as exc:
        if exc.reason is not Reason.LIST_EXPIRED:
            raise
    old = parse_trust_list(body, root.public(), now=0)  # signature and form checked; only the time failed
    raise InputError(Problem.TRUST_LIST_CURRENT_EXPIRED, version=old.version, expired=old.expires_at)


def _sign_offline(args: argparse.Namespace, now: int) -> int:
    """Sign the regions' requests with the root key given, showing each region's key ids before signing.

    Raises:
        InputError: a request is unusable, or a key is not confirmed (see ``offline_signing``).
        KeyFileError, ListError: the root key does not open, or ``--current`` is not a list it signed and in
            force.
        OSError: a file cannot be read or written.
    """
    if not args.request or not args.root_key or not args.out:
        print_error(
            "--request 需要同时给出 --root-key 和 --out（--expect、--current 只用于 --request）",
            "--request needs --root-key and --out (--expect and --current go with --request)",
        )
        return 2
    root = load_signing_key(args.root_key, passphrase_from_env())
    current = _current_list(args.current.read_bytes(), root, now) if args.current else None
    expect: dict[str, set[str]] = {}
    for pairs in args.expect or []:
        for issuer, kid in pairs:
            expect.setdefault(issuer, set()).add(kid)
    plan = plan_signing(merge_requests(args.request), current, expect)
    if not args.json:  # before signing: the operator compares them with what each region reports
        for issuer, kids in plan.keys.items():
            for kid, standing in kids.items():
                by = f" ({plan.vouchers[issuer]})" if standing is KeyStanding.VOUCHED else ""
                print(f"issuer {issuer}: key {kid}  {STANDING[standing]}{by}")
    body = sign_plan(plan, root, now)
    args.out.write_bytes(body)
    if args.json:
        regions = {issuer: list(kids) for issuer, kids in plan.keys.items()}
        keys = {issuer: {kid: str(s) for kid, s in kids.items()} for issuer, kids in plan.keys.items()}
        print_json(
            {
                "out": str(args.out),
                "bytes": len(body),
                "version": plan.version,
                "issuers": regions,
                "keys": keys,
                "vouched_by": plan.vouchers,
            }
        )
    else:
        print(f"signed {args.out} (version {plan.version}, {len(body)} bytes); import it on each issuer")
    return 0
