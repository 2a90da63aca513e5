"""``offline-codes``: printable paper codes for a list of people."""

from __future__ import annotations

import argparse
import time

from issuer.cli.service_session import open_service
from issuer.cli.support import print_json
from issuer.paper_codes import issue_paper_codes, read_subjects
from issuer.settings import Settings


def cmd_offline_codes(settings: Settings, args: argparse.Namespace) -> int:
    subjects = read_subjects(args.subjects)
    with open_service(settings) as service:
        made = issue_paper_codes(service, subjects, args.out, args.format, int(time.time()), "cli:offline-codes")
    sheet, manifest = args.out / "sheet.html", args.out / "manifest.csv"
    if args.json:
        print_json({"count": len(made), "out": str(args.out), "sheet": str(sheet), "manifest": str(manifest)})
    else:
        print(f"{len(made)} paper codes in {args.out} (print {sheet}; indices in manifest.csv)")
    return 0
