"""``keys rotate`` (the signing key) and ``keys rotate-data`` (the data key, in ``data_commands``)."""

from __future__ import annotations

import argparse
import time

from issuer.cli import data_commands as cli_data
from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import print_json
from issuer.keys.signing_keys import root_signing_key, rotate
from issuer.settings import Settings


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "rotate-data":
        return cli_data.rotate_data_key(settings, args)
    now = int(time.time())
    with open_service(settings) as service:
        old, new = rotate(settings, service.storage, now, CLI_ACTOR)
        version = None
        if root_signing_key(settings) is not None:
            version = service.publisher.trust_list(now, force=True, actor=CLI_ACTOR).version
    if args.json:
        print_json({"retired": old, "kid": new, "trust_list_version": version})
        return 0
    print(f"new signing key {new}; {old} retired, trusted until its last code expires")
    if version is None:
        print("the root key is offline: sign the new trust list with `trust-list request`, `sign`, `import`")
    else:
        print(f"trust list version {version} signed; a running server switches keys within seconds")
    return 0
