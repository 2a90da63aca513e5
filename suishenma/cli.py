"""``suishenma``: keys, mint, verify, qr, inspect, device, trust-list and status-list (thin CLI over the library).

Exit codes: 0 success (a code verified), 1 verification failed, 2 usage or file error, 141 when the
reader of standard output went away (``| head``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import cli_device, cliutil, codes, dcc, qr
from ._clock import format_instant, parse_instant
from .claims import DEFAULT_ISSUER, DEFAULT_SKEW, DEVICE_TTL, Claims
from .device import credential_text, mint_credential
from .errors import CodeError, KeyFileError, ListError, SuishenmaError, UsageError
from .keyring import KeyRing, TrustedKey
from .keys import SigningKey, load_signing_key, load_verification_key, passphrase_from_env, write_key_pair
from .labels import Alg, CodeType, EntryStatus, Status
from .statuslist import StatusList, parse_status_list, sign_status_list
from .trustlist import IssuerEntry, parse_trust_list, sign_trust_list

DAY = 86400


_Parser = cliutil.BilingualParser


def _read(path: str, limit: int = 64 * 1024 * 1024) -> bytes:
    """Raises: CliError when the file cannot be read or is too large."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise cliutil.CliError(f"无法读取 {path}（{exc.strerror}）", f"cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise cliutil.CliError(f"{path} 太大", f"{path} is too large")
    return data


def _writable_folder(path: str) -> Path:
    """The folder that will hold ``path``, checked before anything is made.

    Raises:
        CliError: the folder does not exist or is not a folder (no file is written).
    """
    folder = Path(path).parent
    if not folder.is_dir():
        raise cliutil.CliError(
            f"文件夹 {folder} 不存在，无法写入 {path}：请先创建它",
            f"the folder {folder} does not exist, so {path} cannot be written: create it first",
        )
    return folder


def _write_atomically(path: str, write: Any) -> Any:
    """Call ``write(temp_path)`` on a temporary file beside ``path``, then rename it into place, so a
    failure never leaves a partial file. Returns what ``write`` returned.

    Raises:
        CliError: the folder is missing or the file cannot be written.
    """
    folder = _writable_folder(path)
    # the umask applies, as to a file written in place (mkstemp would make every file 0600)
    temp = str(folder / f".{Path(path).stem}.{os.getpid()}.{secrets.token_hex(4)}{Path(path).suffix}")
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise cliutil.CliError(f"无法写入 {path}（{exc.strerror}）", f"cannot write {path}: {exc.strerror}") from None
    try:
        result = write(temp)
        os.replace(temp, path)
    except OSError as exc:
        raise cliutil.CliError(f"无法写入 {path}（{exc.strerror}）", f"cannot write {path}: {exc.strerror}") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return result


def _write(path: str, data: bytes) -> None:
    """Raises: CliError when the folder is missing or the file cannot be written."""
    _write_atomically(path, lambda temp: Path(temp).write_bytes(data))


def _claims_json(c: Claims) -> dict[str, Any]:
    return {
        "issuer": c.issuer,
        "subject": c.subject.hex(),
        "issued_at": format_instant(c.issued_at),
        "expires_at": format_instant(c.expires_at),
        "status": c.status.name.lower(),
        "code_type": c.code_type.name.lower(),
        "masked_name": c.masked_name,
        "masked_id": c.masked_id,
        "status_index": c.status_index,
        "device_key": c.device_key.to_jwk() if c.device_key else None,
    }


def _cmd_keys_generate(a: argparse.Namespace) -> int:
    key = SigningKey.generate(Alg[a.alg])
    priv, pub = write_key_pair(key, a.out, passphrase_from_env())
    print(key.kid.hex())
    print(f"已写入 {priv}（私钥，权限 0600）和 {pub} / wrote {priv} (private, 0600) and {pub}", file=sys.stderr)
    return 0


def _cmd_mint(a: argparse.Namespace) -> int:
    key = load_signing_key(a.key)
    now = parse_instant(a.at)
    try:
        subject = bytes.fromhex(a.subject)
    except ValueError:
        raise UsageError("--subject must be hex") from None
    status = Status[a.status.upper()]
    common: dict[str, Any] = {"issuer": a.issuer, "name": a.name, "id_number": a.id_number}
    if a.ttl is not None:
        common["ttl"] = a.ttl
    if a.type != "dynamic" and a.status_index is None:
        raise UsageError(f"{a.type} codes need --status-index")
    if (a.type == "device") != (a.device_key is not None):
        raise UsageError("--device-key goes with --type device, and only with it")
    if a.type == "device":
        device_key = cli_device.device_key_from_arg(a.device_key)
        common.setdefault("ttl", DEVICE_TTL)
        credential = Claims.device(subject, status, now, a.status_index, device_key, **common)
        print(credential_text(mint_credential(credential, key)))
        return 0
    if a.type == "offline":
        claims = Claims.offline(subject, status, now, a.status_index, **common)
    else:
        if a.status_index is not None:
            raise UsageError("--status-index is for offline codes")
        claims = Claims.dynamic(subject, status, now, **common)
    print(codes.mint(claims, key))
    return 0


def _keyring(a: argparse.Namespace, now: int) -> KeyRing:
    if a.trust_list:
        if not a.root:
            raise UsageError("--trust-list needs --root")
        return parse_trust_list(_read(a.trust_list), load_verification_key(a.root), now=now).keyring
    if not a.key:
        raise UsageError("give --key PUBFILE, or --trust-list FILE --root PUBFILE")
    return KeyRing(TrustedKey(load_verification_key(k), issuer=a.issuer) for k in a.key)


def _cmd_verify(a: argparse.Namespace) -> int:
    now = parse_instant(a.at)
    try:
        if a.profile == "eu-dcc":
            if not a.key:
                raise UsageError("eu-dcc needs --key CERT.pem")
            kid = bytes.fromhex(a.kid) if a.kid else None
            signers = [dcc.dcc_signer(_read(k), kid) for k in a.key]
            r = dcc.verify_dcc(a.code, {s.kid: s for s in signers}, now=now)
            result: dict[str, Any] = {
                "valid": True,
                "profile": "eu-dcc",
                "country": r.country,
                "issued_at": format_instant(r.issued_at),
                "expires_at": format_instant(r.expires_at),
                "kid": r.kid.hex(),
                "hcert": r.hcert,
            }
        else:
            v = codes.verify(a.code, _keyring(a, now), now=now, skew=a.skew)
            result = {
                "valid": True,
                "profile": "suishenma",
                "kid": v.kid.hex(),
                "alg": v.alg.name,
                **_claims_json(v.claims),
                "presented_at": format_instant(v.presented_at) if v.presented_at is not None else None,
            }
    except (KeyFileError, ListError, UsageError):
        raise
    except SuishenmaError as exc:
        out = {"valid": False, "reason": exc.reason.value, "message": exc.message_en, "message_zh": exc.message_zh}
        if a.json:
            print(json.dumps(out, ensure_ascii=False))
        else:
            print(f"INVALID: {exc.reason.value}: {exc.message_zh} / {exc.message_en}")
        return 1
    if a.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        print("VALID " + " ".join(f"{k}={v}" for k, v in result.items() if v is not None and k != "valid"))
    return 0


def _cmd_qr(a: argparse.Namespace) -> int:
    if Path(a.out).suffix.lower() not in (".png", ".svg"):
        raise cliutil.CliError(
            f"{a.out}：输出文件名须以 .png 或 .svg 结尾", f"{a.out}: the output file name must end in .png or .svg"
        )
    version = _write_atomically(a.out, lambda temp: qr.save_qr(a.code, temp, a.ecc))
    print(f"已写入 {a.out}（QR 版本 {version}，纠错等级 {a.ecc}）/ wrote {a.out} (QR version {version}, ECC {a.ecc})")
    return 0


def _cmd_inspect(a: argparse.Namespace) -> int:
    try:
        i = codes.inspect(a.code)
    except CodeError as exc:
        cliutil.print_error(
            f"无法解码：{exc.reason.value}：{exc.message_zh}", f"cannot decode: {exc.reason.value}: {exc.message_en}"
        )
        return 1
    out = {
        "verified": False,
        "warning": "NOT VERIFIED: decoded only; signature, key and times were not checked / 未经验证",
        "alg": Alg(i.alg).name if i.alg in Alg._value2member_map_ else i.alg,
        "kid": i.kid.hex(),
        "compressed": i.compressed,
        "message_bytes": i.message_bytes,
        "claims": _claims_json(i.claims) if i.claims else None,
    }
    if i.presented_at is not None:
        out["presented_at"] = format_instant(i.presented_at)
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def _entries(a: argparse.Namespace, now: int) -> list[IssuerEntry]:
    types = frozenset(CodeType[t.strip().upper()] for t in a.code_types.split(","))
    valid_from = parse_instant(a.valid_from) if a.valid_from else now - DAY
    entries = []
    for spec in a.entry or []:
        issuer, sep, path = spec.partition("=")
        if not sep:
            raise UsageError("--entry takes ISSUER=PUBFILE")
        entries.append(
            IssuerEntry(
                load_verification_key(path), issuer, valid_from, now + a.key_valid_days * DAY, types, a.status_uri
            )
        )
    if not entries:
        raise UsageError("give at least one --entry ISSUER=PUBFILE")
    return entries


def _cmd_trust_sign(a: argparse.Namespace) -> int:
    now = parse_instant(a.at)
    root = load_signing_key(a.root_key)
    _write(a.out, sign_trust_list(_entries(a, now), root, version=a.version, now=now, ttl=a.ttl_days * DAY))
    print(f"已写入 {a.out}（版本 {a.version}）/ wrote {a.out} (version {a.version})")
    return 0


def _cmd_trust_show(a: argparse.Namespace) -> int:
    tl = parse_trust_list(_read(a.file), load_verification_key(a.root), now=parse_instant(a.at))
    out = {
        "version": tl.version,
        "issued_at": format_instant(tl.issued_at),
        "expires_at": format_instant(tl.expires_at),
        "issuers": [
            {
                "issuer": e.issuer,
                "kid": e.key.kid.hex(),
                "alg": e.key.alg.name,
                "valid_from": format_instant(e.valid_from),
                "valid_until": format_instant(e.valid_until),
                "code_types": sorted(t.name.lower() for t in e.code_types),
                "status_uri": e.status_uri,
                "timestamp_uri": e.timestamp_uri,
            }
            for e in tl.issuers
        ],
    }
    print(json.dumps(out, indent=2))
    return 0


def _indices(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        if Path(text).is_file():
            return [int(x) for x in Path(text).read_text().split()]
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError("indices must be integers, comma-separated or one per line in a file") from None


def _cmd_status_build(a: argparse.Namespace) -> int:
    now = parse_instant(a.at)
    lst = StatusList(a.size, a.bits)
    try:
        lst.set_many(_indices(a.revoke), EntryStatus.INVALID)
        lst.set_many(_indices(a.suspend), EntryStatus.SUSPENDED)
    except IndexError as exc:
        raise UsageError(f"index {exc} is outside the list") from None
    token = sign_status_list(
        lst,
        load_signing_key(a.key),
        uri=a.uri,
        issuer=a.issuer,
        version=a.version,
        now=now,
        valid_for=a.valid_days * DAY,
        ttl=a.ttl,
    )
    _write(a.out, token)
    size = len(token)
    print(f"已写入 {a.out}（{size} 字节，版本 {a.version}）/ wrote {a.out} ({size} bytes, version {a.version})")
    return 0


def _cmd_status_show(a: argparse.Namespace) -> int:
    keys = {k.kid: k for k in (load_verification_key(p) for p in a.key)}
    sl = parse_status_list(_read(a.file), keys, now=parse_instant(a.at))
    out: dict[str, Any] = {
        "uri": sl.uri,
        "issuer": sl.issuer,
        "version": sl.version,
        "bits": sl.bits,
        "size": sl.size,
        "issued_at": format_instant(sl.issued_at),
        "expires_at": format_instant(sl.expires_at),
        "ttl": sl.ttl,
    }
    if a.index is not None:
        out["index"] = a.index
        out["status"] = sl.status(a.index).name.lower()
    print(json.dumps(out, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="suishenma", description="Signed short-lived QR credentials (Suishenma format v1).")
    cliutil.add_version(p)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    cli_device.add_parser(sub)
    keys = sub.add_parser("keys", help="key management").add_subparsers(dest="keys_command", required=True)
    g = keys.add_parser("generate", help="write NAME.key (0600) and NAME.pub; prints the kid")
    g.add_argument("--out", required=True, help="path prefix, e.g. keys/issuer")
    g.add_argument("--alg", choices=["EdDSA", "ES256", "SM2"], default="EdDSA", help="SM2 needs the sm2 extra")
    g.set_defaults(func=_cmd_keys_generate)

    m = sub.add_parser("mint", help="sign a code; prints the code text alone")
    m.add_argument("--key", required=True)
    m.add_argument("--subject", required=True, help="pseudonymous subject id, hex")
    m.add_argument("--status", required=True, choices=["green", "yellow", "red"])
    m.add_argument(
        "--type", choices=["dynamic", "offline", "device"], default="dynamic", help="device: a device credential"
    )
    m.add_argument("--ttl", type=int, help="seconds (default 60 dynamic, 180 days offline, 1 day device)")
    m.add_argument("--device-key", help="--type device: the phone's public JWK (text or file) or PEM file")
    m.add_argument("--issuer", default=DEFAULT_ISSUER)
    m.add_argument("--name", help="full name; only its masked form enters the code")
    m.add_argument("--id-number", help="ID number; only its masked form enters the code")
    m.add_argument("--status-index", type=int)
    m.add_argument("--at", help="ISO 8601 issue time (default: now)")
    m.set_defaults(func=_cmd_mint)

    v = sub.add_parser("verify", help="verify a code offline; exit 0 valid, 1 invalid")
    cliutil.add_code_argument(v)
    v.add_argument("--key", action="append", help="trusted public key or certificate (repeatable)")
    v.add_argument("--trust-list")
    v.add_argument("--root", help="pinned root public key for --trust-list")
    v.add_argument("--profile", choices=["suishenma", "eu-dcc"], default="suishenma")
    v.add_argument("--kid", help="eu-dcc: signer kid in hex when --key is a bare public key")
    v.add_argument(
        "--issuer",
        default=DEFAULT_ISSUER,
        help="with --key: the issuer the key signs for (current-form codes and device credentials name none);"
        f" default {DEFAULT_ISSUER}",
    )
    v.add_argument("--at", help="ISO 8601 instant to verify at (default: now)")
    v.add_argument("--skew", type=int, default=DEFAULT_SKEW, help="clock-skew allowance, seconds")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_cmd_verify)

    q = sub.add_parser("qr", help="render a code as PNG or SVG")
    cliutil.add_code_argument(q)
    q.add_argument("--out", required=True)
    q.add_argument("--ecc", choices=list(qr.ECC_LEVELS), default="M")
    q.set_defaults(func=_cmd_qr)

    i = sub.add_parser("inspect", help="decode WITHOUT verifying (debugging only)")
    cliutil.add_code_argument(i)
    i.set_defaults(func=_cmd_inspect)

    tl = sub.add_parser("trust-list", help="sign or show trust lists").add_subparsers(dest="tl_command", required=True)
    ts = tl.add_parser("sign", help="sign a trust list with the root key")
    ts.add_argument("--root-key", required=True)
    ts.add_argument("--entry", action="append", help="ISSUER=PUBFILE (repeatable)")
    ts.add_argument("--code-types", default="dynamic,offline,device")
    ts.add_argument("--status-uri", help="where verifiers fetch the issuer's status list")
    ts.add_argument("--valid-from", help="ISO 8601: first instant the keys may sign (default: a day before --at)")
    ts.add_argument("--key-valid-days", type=int, default=365, help="keys may sign until this many days after --at")
    ts.add_argument("--version", type=int, required=True)
    ts.add_argument("--ttl-days", type=int, default=7)
    ts.add_argument("--at")
    ts.add_argument("--out", required=True)
    ts.set_defaults(func=_cmd_trust_sign)
    tw = tl.add_parser("show", help="verify and print a trust list")
    tw.add_argument("file")
    tw.add_argument("--root", required=True)
    tw.add_argument("--at")
    tw.set_defaults(func=_cmd_trust_show)

    sl = sub.add_parser("status-list", help="build or show status lists").add_subparsers(
        dest="sl_command", required=True
    )
    sb = sl.add_parser("build", help="build and sign a status list")
    sb.add_argument("--key", required=True)
    sb.add_argument("--size", type=int, required=True)
    sb.add_argument("--bits", type=int, choices=[1, 2], default=1)
    sb.add_argument("--revoke", help="indices: 1,2,3 or a file with one per line")
    sb.add_argument("--suspend", help="indices (needs --bits 2)")
    sb.add_argument("--uri", required=True)
    sb.add_argument("--issuer", default=DEFAULT_ISSUER)
    sb.add_argument("--version", type=int, required=True)
    sb.add_argument("--valid-days", type=int, default=2)
    sb.add_argument("--ttl", type=int, default=3600, help="seconds until verifiers should refetch")
    sb.add_argument("--at")
    sb.add_argument("--out", required=True)
    sb.set_defaults(func=_cmd_status_build)
    ss = sl.add_parser("show", help="verify and print a status list")
    ss.add_argument("file")
    ss.add_argument("--key", action="append", required=True, help="issuer public key (repeatable)")
    ss.add_argument("--index", type=int)
    ss.add_argument("--at")
    ss.set_defaults(func=_cmd_status_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of exiting."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
        if "code" in args and "file" in args:
            args.code = cliutil.read_code(args)
        return int(args.func(args))
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return int(exc.code or 0)
    except cliutil.CliError as exc:
        cliutil.print_exception(exc)
        return exc.code
    except SuishenmaError as exc:
        cliutil.print_exception(exc)
        return 2


def main_exit() -> None:
    """Console-script entry point."""
    cliutil.run(main)


if __name__ == "__main__":
    main_exit()
