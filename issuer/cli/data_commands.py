"""The data commands of ``suishenma-issuer``: ``status import``, ``db copy`` and ``keys rotate-data``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import Parser, print_error, print_json
from issuer.keys.sealing import load_sealer, save_sealer
from issuer.keys.signing_keys import passphrase_for_new_keys
from issuer.opening import open_storage
from issuer.settings import Settings
from issuer.signing_health import require_initialised
from issuer.status_import import import_statuses


def add_parsers(sub: argparse._SubParsersAction[Parser], plain: list[Parser], scripted: list[Parser]) -> None:
    status = sub.add_parser("status", parents=plain, help="status changes in bulk").add_subparsers(
        dest="action", required=True, parser_class=Parser, metavar="ACTION"
    )
    imp = status.add_parser(
        "import",
        parents=scripted,
        help="apply a CSV file of status changes (columns: subject or id_number, status, reason, valid_until);"
        " resumable: run it again after an interruption",
    )
    imp.add_argument("file", type=Path)
    db = sub.add_parser("db", parents=plain, help="the database").add_subparsers(
        dest="action", required=True, parser_class=Parser, metavar="ACTION"
    )
    copy = db.add_parser(
        "copy", parents=scripted, help="copy this issuer's data, audit chain intact, into an empty PostgreSQL database"
    )
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/db")


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    bar = _Progress(enabled=not args.json)
    with open_service(settings) as service:
        summary = import_statuses(service, args.file, int(time.time()), f"{CLI_ACTOR}:status-import", bar)
    bar.done()
    if args.json:
        print_json(summary.as_json())
        return 0
    if summary.resumed_at_line:
        print(f"resumed after line {summary.resumed_at_line}")
    print(f"{summary.rows} rows read; {summary.applied} changes applied, {summary.refused} refused in all")
    for reason, n in sorted(summary.reasons.items()):
        print(f"  refused {n:>8}  {reason}")
    if summary.refused:
        print(f"refused rows, with their line numbers: {summary.refused_file}")
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from issuer.storage.copy import copy_to
    from issuer.storage.postgres import PostgresStorage

    if not args.to.startswith(("postgresql://", "postgres://")):
        print_error("--to 须为 postgresql:// 开头的地址", "--to must be a postgresql:// URL")
        return 2
    require_initialised(settings)
    source = open_storage(settings)
    try:
        target = PostgresStorage(args.to, source.sealer)
        try:
            report = copy_to(source, target)
        finally:
            target.close()
    finally:
        source.close()
    if args.json:
        print_json({"rows": report.rows, "audit_rows": report.audit_rows, "audit_head": report.audit_head})
        return 0
    for table, n in report.rows.items():
        print(f"{table:<14} {n:>10} rows")
    print(f"audit chain verified on the copy: {report.audit_rows} rows, head {report.audit_head}")
    print("set database_url (SUISHENMA_ISSUER_DATABASE_URL) to the new database, then restart the issuer")
    return 0


def rotate_data_key(settings: Settings, args: argparse.Namespace) -> int:
    """A new data key seals from now on; every name and ID number is re-sealed under it in batches. The
    older keys stay in the file (a worker still running with them seals with the old key until restarted)."""
    require_initialised(settings)
    passphrase = passphrase_for_new_keys(settings)  # KeysEncrypted: none set beside encrypted keys
    old = load_sealer(settings.keys_path, passphrase)
    new = old.rotated()
    storage = open_storage(settings)
    try:
        save_sealer(settings.keys_path, new, passphrase)
        storage.sealer = new
        after, resealed = "", 0
        while batch := storage.subjects_sealed(after, 1000):
            rows = [
                (s, new.seal(old.open(n, "name", s), "name", s), new.seal(old.open(i, "id_number", s), "id_number", s))
                for s, n, i in batch
            ]
            storage.subjects_reseal(rows)
            resealed += len(rows)
            after = batch[-1][0]
        storage.audit_event("data_key.rotate", str(new.current), {"resealed": resealed}, int(time.time()), CLI_ACTOR)
    finally:
        storage.close()
    if args.json:
        print_json({"data_key": new.current, "resealed": resealed})
    else:
        print(f"data key {new.current} now seals names and ID numbers; {resealed} people re-sealed under it")
        print("restart running issuer workers so that they seal with it too")
    return 0


class _Progress:
    """A progress bar on standard error: redrawn in place on a terminal, a line every 10 % otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        pct = 100 * done // max(1, total)
        if self.tty:
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r导入 importing [{bar:<25}] {pct:3d}%  {done:,}/{total:,} lines")
            sys.stderr.flush()
        elif pct // 10 > self.shown // 10:
            print(f"导入 importing {pct}% ({done:,}/{total:,} lines)", file=sys.stderr)
        self.shown = pct

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
