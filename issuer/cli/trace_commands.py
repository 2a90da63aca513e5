"""``trace``: the people behind pseudonyms from scan logs, each look-up audited with its reason."""

from __future__ import annotations

import argparse
import time

from issuer.cli.service_session import CLI_ACTOR, open_service
from issuer.cli.support import print_json
from issuer.settings import Settings


def cmd_trace(settings: Settings, args: argparse.Namespace) -> int:
    """Resolve the pseudonyms given, or every one a kiosk's uploaded scan log holds (``--kiosk``).

    Raises:
        InputError: no reason, or a malformed pseudonym (nothing is resolved or audited).
        SealError: the pseudonym keys cannot be opened.
    """
    now = int(time.time())
    with open_service(settings) as service:
        pseudonyms = list(args.pseudonym)
        if args.kiosk:
            pseudonyms += service.storage.scan_log_subjects(args.kiosk)
        found = service.trace(pseudonyms, args.reason, now, CLI_ACTOR) if pseudonyms else []
    if args.json:
        print_json([{"pseudonym": r.pseudonym, "subject": r.subject} for r in found])
    else:
        for r in found:
            print(f"{r.pseudonym}  {r.subject or '-（无法对应 / not resolved）'}")
        resolved = sum(1 for r in found if r.subject)
        print(f"{resolved} of {len(found)} resolved; each look-up is in the audit log with the reason given")
    return 0
