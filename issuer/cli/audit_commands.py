"""``audit verify``: the hash chain end to end, against the signed checkpoint."""

from __future__ import annotations

import argparse

from issuer.cli.support import print_error, print_json
from issuer.keys.checkpoints import verify_audit
from issuer.opening import open_storage
from issuer.settings import Settings


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
