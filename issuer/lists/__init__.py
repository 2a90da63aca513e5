"""Signed lists: publishing the trust and status lists, and the trust-list requests that regions send to the
offline root (federation)."""

from issuer.lists.federation import KeyStanding, join_root, merge_requests, read_request, with_identity
from issuer.lists.offline_signing import SigningPlan, import_signed, make_request, plan_signing, sign_plan
from issuer.lists.publisher import Publisher, etag_of, status_list_name

__all__ = [
    "KeyStanding",
    "Publisher",
    "SigningPlan",
    "etag_of",
    "import_signed",
    "join_root",
    "make_request",
    "merge_requests",
    "plan_signing",
    "read_request",
    "sign_plan",
    "status_list_name",
    "with_identity",
]
