"""``api-key create|revoke|list``: keys with scopes for the HTTP API, stored only as hashes."""

from __future__ import annotations

import argparse
import math
import re
import time

from issuer.api_keys import hash_api_key, new_api_key, parse_scopes
from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import print_error, print_json
from issuer.http.bodies import KIOSK_ID_MAX, KIOSK_ID_PATTERN
from issuer.settings import Settings
from suishenma import unprintable_character


def cmd_api_key(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "revoke":
        return _revoke_key(settings, args)
    if args.action == "list":
        return _list_keys(settings, args)
    scopes = parse_scopes(args.scopes)
    rate = args.rate if args.rate is not None else settings.rate_per_s
    problem = _key_usage_problem(args.name, scopes, rate)
    if problem:
        print_error(*problem)
        return 2
    key = new_api_key()
    with open_service(settings) as service:
        service.storage.api_key_create(args.name, hash_api_key(key), scopes, rate, int(time.time()), CLI_ACTOR)
    if args.json:
        print_json({"name": args.name, "scopes": scopes, "rate_per_s": rate, "key": key})
        return 0
    print(f"API key {args.name!r} with scopes {','.join(scopes)}, {rate:g} requests/s. Shown once; store it now:")
    print(key)
    return 0


def _key_usage_problem(name: str, scopes: list[str], rate: float) -> tuple[str, str] | None:
    """Why ``api-key create`` cannot use these arguments (Chinese, English), or None."""
    if not math.isfinite(rate) or rate <= 0:
        return (
            f"--rate 须为大于 0 的有限数字（每秒请求数），而不是 {rate}",
            f"--rate must be a finite number of requests per second above 0, not {rate}",
        )
    bad = unprintable_character(name)
    if bad is not None:
        return (
            f"--name 须为可打印的文字（其中含有 U+{ord(bad):04X}）",
            f"--name must be printable text (it contains U+{ord(bad):04X})",
        )
    if not name.strip():
        return "--name 为空", "--name is empty"
    if "kiosk" in scopes and not (len(name) <= KIOSK_ID_MAX and re.fullmatch(KIOSK_ID_PATTERN, name)):
        return (
            f"终端密钥以其终端编号命名（字母、数字及 . _ : -，至多 {KIOSK_ID_MAX} 个字符），且只能为该终端上传扫码"
            f"记录；{name!r} 不是终端编号",
            f"a kiosk key is named after its kiosk id (letters, digits and . _ : -, at most {KIOSK_ID_MAX}),"
            f" which is the only kiosk it may upload scan logs for; {name!r} is not a kiosk id",
        )
    return None


def _revoke_key(settings: Settings, args: argparse.Namespace) -> int:
    with open_service(settings) as service:
        changed = service.storage.api_key_revoke(args.name, int(time.time()), CLI_ACTOR)
    if args.json:
        print_json({"name": args.name, "revoked": True, "changed": changed})
    else:
        print(f"API key {args.name!r} {'revoked' if changed else 'was already revoked'}")
    return 0


def _list_keys(settings: Settings, args: argparse.Namespace) -> int:
    with open_service(settings, anchor=False) as service:
        records = service.storage.api_keys()
    if args.json:
        print_json(
            [
                {
                    "name": k.name,
                    "state": "revoked" if k.revoked else "active",
                    "scopes": sorted(k.scopes),
                    "rate_per_s": k.rate_per_s,
                }
                for k in records
            ]
        )
        return 0
    for k in records:
        state = "revoked" if k.revoked else "active"
        print(f"{k.name:<24} {state:<8} {','.join(sorted(k.scopes)):<40} {k.rate_per_s:g}/s")
    return 0
