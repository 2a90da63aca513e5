"""``trust-list request|sign|import|publish``: the trust list and the offline root."""

from __future__ import annotations

import argparse
import json
import time

from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import print_error, print_json
from issuer.keys.signing_keys import root_signing_key
from issuer.lists.offline_signing import import_signed, make_request, sign_request
from issuer.settings import Settings
from suishenma import load_signing_key, passphrase_from_env


def cmd_trust_list(settings: Settings, args: argparse.Namespace) -> int:
    now = int(time.time())
    if args.action == "sign" and args.request:
        if not args.root_key or not args.out:
            print_error("--request 需要同时给出 --root-key 和 --out", "--request needs --root-key and --out")
            return 2
        body, entries, version = sign_request(args.request, load_signing_key(args.root_key, passphrase_from_env()), now)
        args.out.write_bytes(body)
        regions = {e.issuer: [x.key.kid.hex() for x in entries if x.issuer == e.issuer] for e in entries}
        if args.json:
            print_json({"out": str(args.out), "bytes": len(body), "version": version, "issuers": regions})
        else:
            for issuer, kids in regions.items():  # for comparing with what each region reports, out of band
                print(f"issuer {issuer}: keys {', '.join(kids)}")
            print(f"signed {args.out} (version {version}, {len(body)} bytes); import it on each issuer")
        return 0
    with open_service(settings) as service:
        if args.action == "request":
            request = make_request(settings, service.storage, now)
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
