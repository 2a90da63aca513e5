"""``keys rotate`` (the signing key), ``keys generate`` (a signing key made in a PKCS#11 token) and
``keys rotate-data`` (the data key, in ``data_commands``)."""

from __future__ import annotations

import argparse
import time

from issuer.cli import data_commands as cli_data
from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import print_json
from issuer.keys.pseudonym_keys import rotate_pseudonym_keys
from issuer.keys.signing_keys import passphrase_for_new_keys, root_signing_key, rotate, token_ref
from issuer.settings import Settings
from suishenma import Alg


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "rotate-data":
        return cli_data.rotate_data_key(settings, args)
    if args.action == "rotate-pseudonym":
        return _rotate_pseudonym(settings, args)
    if args.action == "generate":
        return _generate_in_token(args)
    token = token_ref(args.signing_key) if args.signing_key else None
    now = int(time.time())
    with open_service(settings) as service:
        old, new = rotate(settings, service.storage, now, CLI_ACTOR, token=token)
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


def _generate_in_token(args: argparse.Namespace) -> int:
    """Make a key pair in a token; print its kid, its URI (with the id the token gave it) and its public key.

    Raises: InputError (not a usable ``pkcs11:`` URI), KeyUnusable (TOKEN_KEY_EXISTS, or the token cannot be
    used), KeyFileError (``--out`` exists or cannot be written).
    """
    from issuer.keys.pkcs11_keys import generate_token_key
    from suishenma import KeyFileError
    from suishenma.errors import Reason

    ref, key = generate_token_key(token_ref(args.signing_key), Alg[args.alg])
    pem = key.public().pem()
    if args.out is not None:
        try:
            with args.out.open("xb") as f:
                f.write(pem)
        except OSError as exc:
            raise KeyFileError(Reason.KEY_FILE, f"cannot write {args.out}: {exc.strerror}") from None
    if args.json:
        print_json({"kid": key.kid.hex(), "alg": key.alg.name, "signing_key": ref.uri, "public_key": pem.decode()})
        return 0
    print(f"signing key {key.kid.hex()} ({key.alg.name}) made in the token: {ref.uri}")
    print("use it with `init --signing-key URI` or `keys rotate --signing-key URI`; its public key:")
    print(pem.decode(), end="")
    return 0
