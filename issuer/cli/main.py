"""``suishenma-issuer``: init, serve, api-key, keys rotate, trust-list, audit verify, offline-codes.

Thin: parses arguments and hands each command to its topic's module (``setup_commands``, ``api_key_commands``, ...),
which calls the service and prints. ``main(argv) -> int`` for in-process tests. Errors are
one line in Chinese and one in English on standard error; exit 1 when the command failed, 2 for a usage
or settings error. ``--json`` prints what a script would read as one JSON document.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from issuer.cli import backup_commands as cli_backup
from issuer.cli import data_commands as cli_data
from issuer.cli.api_key_commands import cmd_api_key
from issuer.cli.audit_commands import cmd_audit
from issuer.cli.key_commands import cmd_keys
from issuer.cli.list_commands import cmd_trust_list, expected_keys
from issuer.cli.paper_commands import cmd_offline_codes
from issuer.cli.setup_commands import cmd_init, cmd_serve, workers_count
from issuer.cli.support import Parser, exit_with, print_error
from issuer.cli.trace_commands import cmd_trace
from issuer.errors import IssuerError, SettingsError, bilingual
from issuer.lists.federation import with_identity
from issuer.settings import load_settings
from suishenma import SuishenmaError, __version__
from suishenma.keys import SIGNING_ALGS

SIGNING_KEY_HELP = (
    "a key in a PKCS#11 token (an HSM): pkcs11:token=T;object=L (RFC 7512), made there when missing; the PIN"
    " from SUISHENMA_PKCS11_PIN or the URI's pin-source file, never this line; the module from"
    " SUISHENMA_PKCS11_MODULE (default SoftHSM2's)"
)


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
        default=None,
        help="the issuer key's algorithm (default EdDSA; ES256 for a key made in a token); rotation keeps it."
        " SM2 needs the sm2 extra",
    )
    init.add_argument("--signing-key", default=None, metavar="URI", help=SIGNING_KEY_HELP)
    init.add_argument(
        "--root-pub", type=Path, default=None, help="join an existing (offline) root: pin this public key, make no root"
    )

    serve = sub.add_parser("serve", parents=plain, help="run the HTTP service; refuses to start if it cannot sign")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=workers_count, default=1, help="worker processes (default 1; about one per core)"
    )
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
    rotate = keys.add_parser(
        "rotate",
        parents=scripted,
        help="add a new signing key; the old one stays trusted until its codes expire. On an encrypted keystore"
        " set SUISHENMA_KEY_PASSPHRASE; nothing changes when a key cannot be opened",
    )
    rotate.add_argument("--signing-key", default=None, metavar="URI", help=SIGNING_KEY_HELP)
    generate = keys.add_parser(
        "generate",
        parents=scripted,
        help="make a signing key in a PKCS#11 token (it never leaves it); print its kid and public key",
    )
    generate.add_argument("--signing-key", required=True, metavar="URI", help="pkcs11:token=T;object=L (RFC 7512)")
    generate.add_argument("--alg", choices=["ES256", "EdDSA"], default="ES256", help="default ES256")
    generate.add_argument("--out", type=Path, default=None, help="also write the public key (PEM) to this file")
    keys.add_parser(
        "rotate-data", parents=scripted, help="a new data key for names and ID numbers; every person is re-sealed"
    )
    keys.add_parser(
        "rotate-pseudonym",
        parents=scripted,
        help="a new pseudonym key for every code from now on; older keys stay to resolve older scan logs",
    )
    trace = sub.add_parser(
        "trace", parents=scripted, help="the people behind pseudonyms from scan logs; every look-up is audited"
    )
    trace.add_argument("pseudonym", nargs="*", help="a subject from a scan log (32 hex digits)")
    trace.add_argument("--kiosk", help="every pseudonym in this kiosk's uploaded scan log")
    trace.add_argument("--reason", required=True, help="why (an outbreak's case number, say): audited")

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
    ts.add_argument(
        "--expect",
        type=expected_keys,
        action="append",
        metavar="REGION=KID[,...]",
        help="offline: key ids you checked with each region out of band; a key that the list in force does not"
        " name for its region, and that no key it names vouched for, is signed only when listed here",
    )
    ts.add_argument(
        "--current",
        type=Path,
        help="offline: the trust list in force (the last one this root signed): its keys stay trusted and vouch"
        " for their region's new keys",
    )
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
    cli_backup.add_parsers(sub, scripted)
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
    except (IssuerError, SuishenmaError, ValueError, OSError) as exc:
        print_error(*bilingual(exc))
        return 1


COMMANDS = {
    "init": cmd_init,
    "serve": cmd_serve,
    "api-key": cmd_api_key,
    "keys": cmd_keys,
    "trust-list": cmd_trust_list,
    "audit": cmd_audit,
    "offline-codes": cmd_offline_codes,
    "trace": cmd_trace,
    "status": cli_data.cmd_status,
    "db": cli_data.cmd_db,
    "backup": cli_backup.cmd_backup,
    "restore": cli_backup.cmd_restore,
}


def main_exit() -> None:
    exit_with(main)
