"""Storage: the interfaces the service needs (``protocols``), the records they take and return (``records``)."""

from __future__ import annotations

from issuer.storage.protocols import (
    AuditStore,
    CodeStore,
    FieldSealer,
    KeyStore,
    ListStore,
    PeopleStore,
    Storage,
)
from issuer.storage.records import (
    REVOKED,
    SUSPENDED,
    VALID,
    ApiKeyRecord,
    BatchResult,
    DeviceIssue,
    ImportMark,
    MintCount,
    OfflineCodeRecord,
    PublishedList,
    ScanLogResult,
    ScanRecord,
    SigningKeyRecord,
    StatusChange,
    StatusSnapshot,
    SubjectRecord,
    normalise_id_number,
)

__all__ = [
    "REVOKED",
    "SUSPENDED",
    "VALID",
    "ApiKeyRecord",
    "AuditStore",
    "BatchResult",
    "CodeStore",
    "DeviceIssue",
    "FieldSealer",
    "ImportMark",
    "KeyStore",
    "ListStore",
    "MintCount",
    "OfflineCodeRecord",
    "PeopleStore",
    "PublishedList",
    "ScanLogResult",
    "ScanRecord",
    "SigningKeyRecord",
    "StatusChange",
    "StatusSnapshot",
    "Storage",
    "SubjectRecord",
    "normalise_id_number",
]
