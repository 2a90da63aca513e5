"""``suishenma-issuer``: init, serve, api-key create, keys rotate, trust-list sign, audit verify, offline-codes.

Thin: parses arguments, calls the service, prints. ``main(argv) -> int`` for in-process tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from suishenma import SuishenmaError, load_signing_key, passphrase_from_env, unprintable_character

from .anchor import CheckpointRefused, verify_audit
from .auth import hash_api_key, new_api_key, parse_scopes
from .keystore import NoSigningKey, create_root_key, create_signing_key, root_signing_key, rotate
from .models import KIOSK_ID_MAX, KIOSK_ID_PATTERN
from .offline_root import import_signed, make_request, sign_request
from .paper import issue_paper_codes, read_subjects
from .service import Conflict, IssuerService, NotFound
from .settings import Settings, load_settings
from .sqlite_store import SQLiteStorage

CLI_ACTOR = "cli"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="suishenma-issuer", description="Suishenma issuer service / 随申码签发服务")
    p.add_argument("--dir", type=Path, default=None, help="folder holding var/ and keys/ (default: current)")
    p.add_argument("--config", type=Path, default=None, help="settings TOML file")
    sub = p.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create the database, an issuer key, a dev root key, the first lists")
    init.add_argument("--issuer-id", default=None, help="issuer (region) id, default SH")

    serve = sub.add_parser("serve", help="run the HTTP service (one uvicorn worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--access-log", action="store_true", help="log every request")

    key = sub.add_parser("api-key", help="API keys").add_subparsers(dest="action", required=True)
    create = key.add_parser("create", help="make a key; it is printed once, as the last line")
    create.add_argument("--name", required=True, help="who uses it; for a kiosk key, the kiosk's id")
    create.add_argument("--scopes", required=True, help="comma-separated: enrol,status,mint,revoke,kiosk,admin")
    create.add_argument("--rate", type=float, default=None, help="requests per second (default from settings)")

    revoke = key.add_parser("revoke", help="stop a key from working (within seconds on a running server)")
    revoke.add_argument("--name", required=True)
    key.add_parser("list", help="names, scopes and state of every key (never the keys themselves)")

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True)
    keys.add_parser(
        "rotate",
        help="add a new signing key; the old one stays trusted until its codes expire. On an encrypted keystore"
        " set SUISHENMA_KEY_PASSPHRASE; nothing changes when a key cannot be opened",
    )

    trust = sub.add_parser("trust-list", help="the root-signed trust list").add_subparsers(dest="action", required=True)
    ts = trust.add_parser("sign", help="re-sign it now with keys/root.key, or sign a request offline")
    ts.add_argument("--request", type=Path, help="offline: a request from `trust-list request` (no database used)")
    ts.add_argument("--root-key", type=Path, help="offline: the root private key")
    ts.add_argument("--out", type=Path, help="offline: where to write the signed list")
    tr = trust.add_parser("request", help="write what the next list must hold, for an offline root")
    tr.add_argument("--out", type=Path, required=True)
    ti = trust.add_parser("import", help="publish a list signed offline (checked against keys/root.pub)")
    ti.add_argument("file", type=Path)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    av = audit.add_parser(
        "verify", help="check the hash chain against the signed checkpoint; exit 1 on any edited or deleted row"
    )
    av.add_argument("--expect-head", default=None, help="head hash recorded earlier, to catch deleted tails")
    av.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a checkpoint kept elsewhere (e.g. fetched from /v1/audit/checkpoint) instead of var/'s",
    )

    paper = sub.add_parser("offline-codes", help="issue printable paper codes for a list of subjects")
    paper.add_argument("--subjects", type=Path, required=True, help="file with one subject id per line")
    paper.add_argument("--out", type=Path, required=True)
    paper.add_argument("--format", choices=("png", "svg"), default="png")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config, base_dir=args.dir, issuer_id=getattr(args, "issuer_id", None))
    except (ValidationError, FileNotFoundError) as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](settings, args)
    except (SuishenmaError, NoSigningKey, NotFound, Conflict, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


@contextmanager
def _service(settings: Settings, *, anchor: bool = True) -> Iterator[IssuerService]:
    """The service on the configured database; after a command that may have written, a fresh signed
    checkpoint of the audit head (a failure to sign one is a warning: the change itself is done)."""
    service = IssuerService(settings, SQLiteStorage(settings.db_path, settings.sqlite_synchronous))
    try:
        yield service
        if anchor:
            _write_checkpoint(service)
    finally:
        service.storage.close()


def _write_checkpoint(service: IssuerService) -> None:
    try:
        service.anchor.write(int(time.time()))
    except CheckpointRefused as exc:
        print(f"warning: audit checkpoint refused: {exc}", file=sys.stderr)
    except (SuishenmaError, NoSigningKey, OSError) as exc:
        print(
            f"warning: the audit checkpoint was not updated ({exc}); the server or the next command will",
            file=sys.stderr,
        )


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    now = int(time.time())
    with _service(settings) as service:
        existing = service.storage.signing_keys()
        if existing:
            print(f"already initialised: {settings.db_path} (signing key {existing[-1].kid})")
            return 0
        kid = create_signing_key(settings, service.storage, now, CLI_ACTOR)
        root = create_root_key(settings)
        trust = service.publisher.trust_list(now, force=True, actor=CLI_ACTOR)
        status = service.publisher.status_list(now, actor=CLI_ACTOR)
        print(f"database      {settings.db_path}")
        print(f"issuer        {settings.issuer_id}, signing key {kid} in {settings.keys_path}/issuer-{kid}.key")
        print(f"root key      {root} (development only: keep the production root offline)")
        print(f"trust list    version {trust.version}; status list version {status.version}")
        return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log, log_level="info")
    return 0


def cmd_api_key(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "revoke":
        return _revoke_key(settings, args.name)
    if args.action == "list":
        return _list_keys(settings)
    scopes = parse_scopes(args.scopes)
    rate = args.rate if args.rate is not None else settings.rate_per_s
    problem = _key_usage_problem(args.name, scopes, rate)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    key = new_api_key()
    with _service(settings) as service:
        service.storage.api_key_create(args.name, hash_api_key(key), scopes, rate, int(time.time()), CLI_ACTOR)
    print(f"API key {args.name!r} with scopes {','.join(scopes)}, {rate:g} requests/s. Shown once; store it now:")
    print(key)
    return 0


def _key_usage_problem(name: str, scopes: list[str], rate: float) -> str | None:
    """Why ``api-key create`` cannot use these arguments, or None."""
    if not math.isfinite(rate) or rate <= 0:
        return f"--rate must be a finite number of requests per second above 0, not {rate}"
    bad = unprintable_character(name)
    if bad is not None or not name.strip():
        return f"--name must be printable text (it contains U+{ord(bad):04X})" if bad else "--name is empty"
    if "kiosk" in scopes and not (len(name) <= KIOSK_ID_MAX and re.fullmatch(KIOSK_ID_PATTERN, name)):
        return (
            f"a kiosk key is named after its kiosk id (letters, digits and . _ : -, at most {KIOSK_ID_MAX}),"
            f" which is the only kiosk it may upload scan logs for; {name!r} is not a kiosk id"
        )
    return None


def _revoke_key(settings: Settings, name: str) -> int:
    with _service(settings) as service:
        changed = service.storage.api_key_revoke(name, int(time.time()), CLI_ACTOR)
    print(f"API key {name!r} {'revoked' if changed else 'was already revoked'}")
    return 0


def _list_keys(settings: Settings) -> int:
    with _service(settings, anchor=False) as service:
        for k in service.storage.api_keys():
            state = "revoked" if k.revoked else "active"
            print(f"{k.name:<24} {state:<8} {','.join(sorted(k.scopes)):<40} {k.rate_per_s:g}/s")
    return 0


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    now = int(time.time())
    with _service(settings) as service:
        old, new = rotate(settings, service.storage, now, CLI_ACTOR)
        print(f"new signing key {new}; {old} retired, trusted until its last code expires")
        if root_signing_key(settings) is None:
            print("the root key is offline: sign the new trust list with `trust-list request`, `sign`, `import`")
        else:
            trust = service.publisher.trust_list(now, force=True, actor=CLI_ACTOR)
            print(f"trust list version {trust.version} signed; a running server switches keys within seconds")
        return 0


def cmd_trust_list(settings: Settings, args: argparse.Namespace) -> int:
    now = int(time.time())
    if args.action == "sign" and args.request:
        if not args.root_key or not args.out:
            print("error: --request needs --root-key and --out", file=sys.stderr)
            return 2
        body = sign_request(args.request, load_signing_key(args.root_key, passphrase_from_env()), now)
        args.out.write_bytes(body)
        print(f"signed {args.out} ({len(body)} bytes); import it on the issuer with `trust-list import`")
        return 0
    with _service(settings) as service:
        if args.action == "request":
            request = make_request(settings, service.storage, now)
            args.out.write_text(json.dumps(request, indent=2) + "\n", "utf-8")
            print(f"request for trust list version {request['version']} written to {args.out}")
            return 0
        if args.action == "import":
            lst = import_signed(settings, service.storage, args.file.read_bytes(), now, CLI_ACTOR)
        elif root_signing_key(settings) is None:
            print(
                "error: no keys/root.key here: use `trust-list request`, sign offline, then `import`", file=sys.stderr
            )
            return 1
        else:
            lst = service.publisher.trust_list(now, force=True, actor=CLI_ACTOR)
        print(f"trust list version {lst.version} published, expires at {lst.expires_at}")
        return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.db_path.exists():
        print(f"error: no database at {settings.db_path}", file=sys.stderr)
        return 2
    storage = SQLiteStorage(settings.db_path, settings.sqlite_synchronous)
    try:
        verdict = verify_audit(settings, storage, args.checkpoint)
    finally:
        storage.close()
    report = verdict.chain
    problems = list(verdict.problems)
    if args.expect_head and args.expect_head != report.head and not any(args.expect_head in p for p in problems):
        problems.append(f"head is {report.head}, expected {args.expect_head}: rows were removed or rewritten")
    for p in problems:
        print(f"FAIL {p}")
    anchored = f", checkpoint at row {verdict.checkpoint.seq}" if verdict.checkpoint else ""
    print(f"{'OK' if not problems else 'TAMPERED'}: {report.rows} rows, head {report.head}{anchored}")
    return 0 if not problems else 1


def cmd_offline_codes(settings: Settings, args: argparse.Namespace) -> int:
    subjects = read_subjects(args.subjects)
    with _service(settings) as service:
        made = issue_paper_codes(service, subjects, args.out, args.format, int(time.time()), "cli:offline-codes")
    print(f"{len(made)} paper codes in {args.out} (print {args.out / 'sheet.html'}; indices in manifest.csv)")
    return 0


COMMANDS = {
    "init": cmd_init,
    "serve": cmd_serve,
    "api-key": cmd_api_key,
    "keys": cmd_keys,
    "trust-list": cmd_trust_list,
    "audit": cmd_audit,
    "offline-codes": cmd_offline_codes,
}


def main_exit() -> None:
    sys.exit(main())
