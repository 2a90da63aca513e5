"""Suishenma offline verifier: scenario policies, verdicts, signed-list sync, replay protection, scan log.

from verifier import Verifier
v = Verifier.open("var/gate-1")
verdict = v.verify(scanned_text)   # never raises for a bad code
"""

from ._verifier import Health, ListHealth, Verifier
from .fetch import Fetcher, FetchResult, HttpxFetcher
from .kiosk_key import KIOSK_KEY_ENV, KIOSK_KEY_FILE_ENV
from .policy import BUILTIN, Policy, policy_from_toml
from .sync import SyncProblem, SyncReason, SyncReport
from .verdict import Decision, Verdict, VerdictReason

__all__ = [
    "BUILTIN",
    "KIOSK_KEY_ENV",
    "KIOSK_KEY_FILE_ENV",
    "Decision",
    "FetchResult",
    "Fetcher",
    "Health",
    "HttpxFetcher",
    "ListHealth",
    "Policy",
    "SyncProblem",
    "SyncReason",
    "SyncReport",
    "Verdict",
    "VerdictReason",
    "Verifier",
    "policy_from_toml",
]
