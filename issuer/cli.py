"""``suishenma-issuer``: init, serve, api-key, keys rotate, trust-list, audit verify, offline-codes.

Thin: parses arguments, calls the service, prints. ``main(argv) -> int`` for in-process tests. Errors are
one line in Chinese and one in English on standard error; exit 1 when the command failed, 2 for a usage
or settings error. ``--json`` prints what a script would read as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from suishenma import Alg, SuishenmaError, __version__, load_signing_key, passphrase_from_env, unprintable_character
from suishenma.keys import SIGNING_ALGS

from . import cli_data
from .anchor import CheckpointRefused, verify_audit
from .auth import hash_api_key, new_api_key, parse_scopes
from .cli_support import Parser, exit_with, print_error, print_json, print_warning
from .federation import join_root, remember_identity, with_identity
from .health import check_can_sign, require_initialised
from .keystore import create_root_key, create_signing_key, root_signing_key, rotate
from .logs import log_config
from .models import KIOSK_ID_MAX, KIOSK_ID_PATTERN
from .offline_root import import_signed, make_request, sign_request
from .paper import issue_paper_codes, read_subjects
from .problems import NotInitialised, bilingual
from .sealing import SealError
from .service import Conflict, IssuerService, NotFound
from .settings import Settings, SettingsError, load_settings
from .storage import StorageUnavailable
from .storage.factory import data_sealer, open_storage

CLI_ACTOR = "cli"


def _common(json_output: bool = False) -> Parser:
    """Options every subcommand also takes after its name (``init --dir D`` as well as ``--dir D init``)."""
    p = Parser(add_help=False)
    p.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help="folder holding var/ and keys/")
    p.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="settings TOML file")
    if json_output:
        p.add_argument("--json", action="store_true", help="print the result as JSON, for scripts")
    return p


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="suishenma-issuer",
        description="随申码签发服务 · Suishenma issuer service: enrols people, mints codes, signs lists",
    )
    p.add_argument("--version", action="version", version=f"suishenma-issuer {__version__}")
    p.add_argument("--dir", type=Path, default=None, help="folder holding var/ and keys/ (default: current)")
    p.add_argument(
        "--config", type=Path, default=None, help="settings TOML file (default: $SUISHENMA_ISSUER_CONFIG, if set)"
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    plain, scripted = [_common()], [_common(json_output=True)]

    init = sub.add_parser(
        "init", parents=scripted, help="create the database, an issuer key, a dev root key, the first lists"
    )
    init.add_argument("--issuer-id", default=None, help="issuer (region) id, default SH; kept for later commands")
    init.add_argument(
        "--alg",
        choices=[a.name for a in SIGNING_ALGS],
        default="EdDSA",
        help="the issuer key's algorithm; rotation keeps it. SM2 needs the sm2 extra",
    )
    init.add_argument(
        "--root-pub", type=Path, default=None, help="join an existing (offline) root: pin this public key, make no root"
    )

    serve = sub.add_parser("serve", parents=plain, help="run the HTTP service; refuses to start if it cannot sign")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=_workers, default=1, help="worker processes (default 1; about one per core)")
    serve.add_argument("--access-log", action="store_true", help="log every request")

    key = sub.add_parser("api-key", parents=plain, help="API keys").add_subparsers(
        dest="action", required=True, parser_class=Parser, metavar="ACTION"
    )
    create = key.add_parser("create", parents=scripted, help="make a key; it is printed once, as the last line")
    create.add_argument("--name", required=True, help="who uses it; for a kiosk key, the kiosk's id")
    create.add_argument("--scopes", required=True, help="comma-separated: enrol,status,mint,revoke,kiosk,admin")
    create.add_argument("--rate", type=float, default=None, help="requests per second (default from settings)")

    revoke = key.add_parser(
        "revoke", parents=scripted, help="stop a key from working (within seconds on a running server)"
    )
    revoke.add_argument("--name", required=True)
    key.add_parser("list", parents=scripted, help="names, scopes and state of every key (never the keys themselves)")

    keys = sub.add_parser("keys", parents=plain, help="signing keys").add_subparsers(
        dest="action", required=True, parser_class=Parser, metavar="ACTION"
    )
    keys.add_parser(
        "rotate",
        parents=scripted,
        help="add a new signing key; the old one stays trusted until its codes expire. On an encrypted keystore"
        " set SUISHENMA_KEY_PASSPHRASE; nothing changes when a key cannot be opened",
    )
    keys.add_parser(
        "rotate-data", parents=scripted, help="a new data key for names and ID numbers; every person is re-sealed"
    )

    trust = sub.add_parser("trust-list", parents=plain, help="the root-signed trust list").add_subparsers(
        dest="action", required=True, parser_class=Parser, metavar="ACTION"
    )
    ts = trust.add_parser("sign", parents=scripted, help="re-sign it now with keys/root.key, or sign a request offline")
    ts.add_argument(
        "--request",
        type=Path,
        action="append",
        help="offline: a request from `trust-list request` (no database used); one per region for a federated list",
    )
    ts.add_argument("--root-key", type=Path, help="offline: the root private key")
    ts.add_argument("--out", type=Path, help="offline: where to write the signed list")
    tr = trust.add_parser("request", parents=scripted, help="write what the next list must hold, for an offline root")
    tr.add_argument("--out", type=Path, required=True)
    ti = trust.add_parser(
        "import", parents=scripted, help="publish a list signed offline (checked against keys/root.pub)"
    )
    ti.add_argument("file", type=Path)

    audit = sub.add_parser("audit", parents=plain, help="the audit log").add_subparsers(
        dest="action", required=True, parser_class=Parser, metavar="ACTION"
    )
    av = audit.add_parser(
        "verify",
        parents=scripted,
        help="check the hash chain against the signed checkpoint; exit 1 on any edited or deleted row",
    )
    av.add_argument("--expect-head", default=None, help="head hash recorded earlier, to catch deleted tails")
    av.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a checkpoint kept elsewhere (e.g. fetched from /v1/audit/checkpoint) instead of var/'s",
    )

    cli_data.add_parsers(sub, plain, scripted)
    paper = sub.add_parser("offline-codes", parents=scripted, help="issue printable paper codes for a list of subjects")
    paper.add_argument("--subjects", type=Path, required=True, help="file with one subject id per line")
    paper.add_argument("--out", type=Path, required=True)
    paper.add_argument("--format", choices=("png", "svg"), default="png")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        settings = with_identity(
            load_settings(args.config, base_dir=args.dir, issuer_id=getattr(args, "issuer_id", None))
        )
    except SettingsError as exc:
        for zh, en in exc.lines:
            print_error(zh, en)
        return 2
    try:
        return COMMANDS[args.command](settings, args)
    except BrokenPipeError:  # the reader went away (| head): not an error of the command's
        raise
    except (
        SuishenmaError,
        NotInitialised,
        NotFound,
        Conflict,
        ValueError,
        OSError,
        StorageUnavailable,
        SealError,
    ) as exc:
        print_error(*bilingual(exc))
        return 1


@contextmanager
def _service(settings: Settings, *, anchor: bool = True, create: bool = False) -> Iterator[IssuerService]:
    """The service on the configured database; after a command that may have written, a fresh signed
    checkpoint of the audit head (a failure to sign one is a warning: the change itself is done).

    Raises:
        NotInitialised: no database here and ``create`` is false (a mistyped ``--dir`` makes nothing).
    """
    if not create:
        require_initialised(settings)
    service = IssuerService(settings, open_storage(settings, create=create))
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
        print_warning(f"审计检查点被拒绝：{exc}", f"audit checkpoint refused: {exc}")
    except (SuishenmaError, NotInitialised, OSError) as exc:
        zh, en = bilingual(exc)
        print_warning(
            f"审计检查点未更新（{zh}）；服务器或下一条命令会更新它",
            f"the audit checkpoint was not updated ({en}); the server or the next command will",
        )


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    now = int(time.time())
    with _service(settings, create=True) as service:
        existing = service.storage.signing_keys()
        if existing:
            if args.json:
                print_json({"already_initialised": True, "database": str(settings.db_path), "kid": existing[-1].kid})
            else:
                print(f"already initialised: {settings.db_path} (signing key {existing[-1].kid})")
            return 0
        root = join_root(settings, args.root_pub) if args.root_pub else None
        kid = create_signing_key(settings, service.storage, now, CLI_ACTOR, Alg[args.alg])
        remember_identity(settings)
        if root is None:
            root = create_root_key(settings)
            trust_version: int | None = service.publisher.trust_list(now, force=True, actor=CLI_ACTOR).version
        else:  # the shared root signs this region's first list: request, sign offline, import
            trust_version = None
        status = service.publisher.status_list(now, actor=CLI_ACTOR)
        key_file = settings.keys_path / f"issuer-{kid}.key"
        if args.json:
            print_json(
                {
                    "already_initialised": False,
                    "database": str(settings.db_path),
                    "issuer_id": settings.issuer_id,
                    "kid": kid,
                    "key_file": str(key_file),
                    "root_key": str(root),
                    "joined_root": bool(args.root_pub),
                    "trust_list_version": trust_version,
                    "status_list_version": status.version,
                }
            )
            return 0
        print(f"database      {settings.db_path}")
        print(f"issuer        {settings.issuer_id}, signing key {kid} in {key_file}")
        if args.root_pub:
            print(f"root key      {root} pinned (the shared root stays offline)")
            print(f"status list   version {status.version}; no trust list yet: set public_url, then")
            print("              `trust-list request`, the root signs it with the others'; then `trust-list import`")
            return 0
        print(f"root key      {root} (development only: keep the production root offline)")
        print(f"trust list    version {trust_version}; status list version {status.version}")
        return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Refuses to start (exit 1, the cause in both languages) when the issuer could not sign."""
    import uvicorn

    from .app import SERVE_SETTINGS_ENV, create_app

    require_initialised(settings)
    storage = open_storage(settings, private_data=False)
    try:
        check_can_sign(settings, storage)
        storage.sealer = data_sealer(settings)
    except BaseException:
        storage.close()
        raise
    config = log_config("INFO", args.access_log)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    options = {"host": args.host, "port": args.port, "access_log": args.access_log, "log_config": config}
    if args.workers == 1:
        uvicorn.run(create_app(settings, storage), **options)
        return 0
    # Each worker process builds its own app (``app.app_from_environment``) from these settings.
    storage.close()
    os.environ[SERVE_SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run("issuer.app:app_from_environment", factory=True, workers=args.workers, **options)
    return 0


def _workers(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return n


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
    with _service(settings) as service:
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
    with _service(settings) as service:
        changed = service.storage.api_key_revoke(args.name, int(time.time()), CLI_ACTOR)
    if args.json:
        print_json({"name": args.name, "revoked": True, "changed": changed})
    else:
        print(f"API key {args.name!r} {'revoked' if changed else 'was already revoked'}")
    return 0


def _list_keys(settings: Settings, args: argparse.Namespace) -> int:
    with _service(settings, anchor=False) as service:
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


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "rotate-data":
        return cli_data.rotate_data_key(settings, args)
    now = int(time.time())
    with _service(settings) as service:
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
    with _service(settings) as service:
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


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.database_url and not settings.db_path.exists():
        print_error(f"{settings.db_path} 处没有数据库", f"no database at {settings.db_path}")
        return 2
    storage = open_storage(settings, private_data=False)  # the chain needs no data key: a copy can be checked
    try:
        verdict = verify_audit(settings, storage, args.checkpoint)
    finally:
        storage.close()
    report = verdict.chain
    problems = list(verdict.problems)
    if args.expect_head and args.expect_head != report.head and not any(args.expect_head in p for p in problems):
        problems.append(f"head is {report.head}, expected {args.expect_head}: rows were removed or rewritten")
    if args.json:
        print_json(
            {
                "ok": not problems,
                "rows": report.rows,
                "head": report.head,
                "checkpoint_seq": verdict.checkpoint.seq if verdict.checkpoint else None,
                "problems": problems,
            }
        )
        return 0 if not problems else 1
    for p in problems:
        print(f"FAIL {p}")
    anchored = f", checkpoint at row {verdict.checkpoint.seq}" if verdict.checkpoint else ""
    print(f"{'OK' if not problems else 'TAMPERED'}: {report.rows} rows, head {report.head}{anchored}")
    return 0 if not problems else 1


def cmd_offline_codes(settings: Settings, args: argparse.Namespace) -> int:
    subjects = read_subjects(args.subjects)
    with _service(settings) as service:
        made = issue_paper_codes(service, subjects, args.out, args.format, int(time.time()), "cli:offline-codes")
    sheet, manifest = args.out / "sheet.html", args.out / "manifest.csv"
    if args.json:
        print_json({"count": len(made), "out": str(args.out), "sheet": str(sheet), "manifest": str(manifest)})
    else:
        print(f"{len(made)} paper codes in {args.out} (print {sheet}; indices in manifest.csv)")
    return 0


COMMANDS = {
    "init": cmd_init,
    "serve": cmd_serve,
    "api-key": cmd_api_key,
    "keys": cmd_keys,
    "trust-list": cmd_trust_list,
    "audit": cmd_audit,
    "offline-codes": cmd_offline_codes,
    "status": lambda settings, args: cli_data.cmd_status(settings, args, _service),
    "db": cli_data.cmd_db,
}


def main_exit() -> None:
    exit_with(main)
