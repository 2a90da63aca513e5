"""``keys rotate`` (the signing key) and ``keys rotate-data`` (the data key, in ``data_commands``)."""

from __future__ import annotations

import argparse
import time

from issuer.cli import data_commands as cli_data
from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import print_json
from issuer.keys.pseudonym_keys import rotate_pseudonym_keys
from issuer.keys.signing_keys import passphrase_for_new_keys, root_signing_key, rotate
from issuer.settings import Settings


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "rotate-data":
        return cli_data.rotate_data_key(settings, args)
    if args.action == "rotate-pseudonym":
        return _rotate_pseudonym(settings, args)
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


def _rotate_pseudonym(settings: Settings, args: argparse.Namespace) -> int:
    """Raises: SealError (the key file does not open), KeysEncrypted, OSError (nothing changed)."""
    now = int(time.time())
    with open_service(settings) as service:
        service.pseudonym_keys(now)  # made first when missing, so there is one to rotate from
        old, new = rotate_pseudonym_keys(
            settings.keys_path, service.storage, passphrase_for_new_keys(settings), now, CLI_ACTOR
        )
    if args.json:
        print_json({"retired": old, "kid": new})
    else:
        print(f"new pseudonym key {new}; {old} kept to resolve older scan logs")
    return 0
