"""``suishenma-issuer backup`` and ``restore`` (issuer.backup)."""

from __future__ import annotations

import argparse
from pathlib import Path

from issuer.backup import backup, restore
from issuer.cli.support import Parser, print_error, print_json
from issuer.settings import Settings


def add_parsers(sub: argparse._SubParsersAction[Parser], scripted: list[Parser]) -> None:
    b = sub.add_parser(
        "backup",
        parents=scripted,
        help="a consistent copy of the database, taken while the issuer serves, and the list of key files it needs",
    )
    b.add_argument("--out", type=Path, required=True, help="a new folder")
    b.add_argument(
        "--with-keys",
        action="store_true",
        help="copy the key files too (the folder is then as secret as keys/); without, they are only listed",
    )
    r = sub.add_parser(
        "restore",
        parents=scripted,
        help="restore a backup into a new issuer folder (or an empty PostgreSQL database), then check it",
    )
    r.add_argument("backup", type=Path, help="the folder backup wrote")


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    manifest = backup(settings, args.out, with_keys=args.with_keys)
    if args.json:
        print_json(manifest)
        return 0
    print(f"database ({manifest['backend']}): {args.out / str(manifest['database'])}")
    print(f"audit log at the start of the copy: {manifest['audit_seq_at_start']} rows")
    files = manifest["files"]
    assert isinstance(files, list)
    for f in files:
        print(f"  {'copied' if f['copied'] else 'listed'}  {f['path']:<32} {f['why']}")
    if not args.with_keys:
        print("keep the listed files safe apart from this folder: restore checks them by their SHA-256")
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    report = restore(settings, args.backup)
    if args.json:
        print_json({**report.__dict__, "ok": report.ok})
    else:
        print(f"restored ({report.backend}): audit log {report.audit_rows} rows, head {report.audit_head}")
        print(f"checkpoint at row {report.checkpoint_seq}; {report.names_opened} sealed names open with the data key")
    if not report.ok:
        for problem in report.problems:
            print_error("恢复后的检查未通过：" + problem, "the restored issuer fails a check: " + problem)
        return 1
    return 0
