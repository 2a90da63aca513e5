"""``suishenma device``: the phone's side of device-bound codes, for app back ends and test harnesses.

suishenma device keygen --out keys/phone [--alg EdDSA|ES256]   # prints the public JWK, one line
suishenma device present --credential TEXT|FILE --key keys/phone.key [--at ISO8601]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._clock import parse_instant
from .device import present, read_credential
from .device_key import DeviceKey
from .errors import UsageError
from .keys import SigningKey, load_signing_key, passphrase_from_env, write_key_pair
from .labels import Alg

MAX_ARG_FILE = 64 * 1024


def read_text_or_file(value: str, what: str) -> str:
    """``value`` itself, or the contents of the file it names.

    Raises:
        UsageError: the file cannot be read or is too large.
    """
    path = Path(value)
    if len(value) > 4096 or not path.is_file():
        return value
    try:
        with open(path, encoding="utf-8") as f:
            data = f.read(MAX_ARG_FILE + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} from {value}: {exc}") from None
    if len(data) > MAX_ARG_FILE:
        raise UsageError(f"{value} is too large for a {what}")
    return data.strip()


def device_key_from_arg(value: str) -> DeviceKey:
    """A device key from a JWK (text or file) or a PEM public key file.

    Raises:
        UsageError: neither a public JWK nor a usable public key.
    """
    text = read_text_or_file(value, "device key")
    if text.lstrip().startswith("-----BEGIN"):
        from .keys import VerificationKey

        return DeviceKey.of(VerificationKey.from_pem(text.encode()))
    try:
        jwk: Any = json.loads(text)
    except ValueError:
        raise UsageError("the device key must be a JWK (JSON) or a PEM public key") from None
    return DeviceKey.from_jwk(jwk)


def _keygen(a: argparse.Namespace) -> int:
    key = SigningKey.generate(Alg[a.alg])
    priv, pub = write_key_pair(key, a.out, passphrase_from_env())
    print(json.dumps(DeviceKey.of(key).to_jwk(), separators=(",", ":")))
    print(f"已写入 {priv}（私钥，权限 0600）和 {pub} / wrote {priv} (private, 0600) and {pub}", file=sys.stderr)
    return 0


def _present(a: argparse.Namespace) -> int:
    credential = read_credential(read_text_or_file(a.credential, "credential"))
    print(present(credential, load_signing_key(a.key), now=parse_instant(a.at)))
    return 0


def add_parser(sub: Any) -> None:
    """Add ``device keygen`` and ``device present`` to the main parser's subcommands."""
    device = sub.add_parser("device", help="the phone's side of device-bound codes").add_subparsers(
        dest="device_command", required=True
    )
    k = device.add_parser("keygen", help="write NAME.key (0600) and NAME.pub; prints the public JWK")
    k.add_argument("--out", required=True, help="path prefix, e.g. keys/phone")
    k.add_argument("--alg", choices=["EdDSA", "ES256"], default="EdDSA")
    k.set_defaults(func=_keygen)
    p = device.add_parser("present", help="make a code from a device credential; prints the code text")
    p.add_argument("--credential", required=True, help="credential text, or a file holding it")
    p.add_argument("--key", required=True, help="the device's private key file")
    p.add_argument("--at", help="ISO 8601 presentation time (default: now)")
    p.set_defaults(func=_present)
