"""Signed lists: publishing the trust and status lists, and the trust-list requests that regions send to the
offline root (federation)."""

from issuer.lists.federation import join_root, merge_requests, read_request, with_identity
from issuer.lists.offline_signing import import_signed, make_request, sign_request
from issuer.lists.publisher import Publisher, etag_of, status_list_name

__all__ = [
    "Publisher",
    "etag_of",
    "import_signed",
    "join_root",
    "make_request",
    "merge_requests",
    "read_request",
    "sign_request",
    "status_list_name",
    "with_identity",
]
