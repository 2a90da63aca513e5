"""Suishenma core: short-lived signed QR credentials (format v1), trust lists and status lists.

Pure library: no web, database or camera imports; every time decision takes ``now``.
"""

from .checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from .claims import DEFAULT_SKEW, DEVICE_TTL, DYNAMIC_TTL, OFFLINE_TTL, Claims, VerifiedCode
from .codes import Inspection, inspect, mint, verify
from .dcc import DccResult, dcc_signer, verify_dcc
from .device import credential_text, mint_credential, present, read_credential, verify_presentation
from .device_key import DeviceKey
from .errors import (
    CodeClaimsError,
    CodeError,
    CodeFormatError,
    CodeSignatureError,
    CodeTimeError,
    KeyFileError,
    ListError,
    NetworkError,
    Reason,
    SuishenmaError,
    UsageError,
)
from .freshness import SignedTimestamp, parse_timestamp, sign_timestamp, vouched
from .keyring import KeyRing, TrustedKey
from .keys import (
    SigningKey,
    VerificationKey,
    load_signing_key,
    load_verification_key,
    passphrase_from_env,
    write_key_pair,
)
from .labels import Alg, CodeType, EntryStatus, Status
from .masking import check_display_text, mask_id_number, mask_name, unprintable_character
from .pseudonyms import PSEUDONYM_BYTES, PseudonymKey
from .statusdelta import StatusDelta, encode_delta, parse_delta
from .statuslist import SignedStatusList, StatusList, list_digest, parse_status_list, sign_status_list
from .texts import Text
from .trustlist import IssuerEntry, TrustList, parse_trust_list, sign_trust_list

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SKEW",
    "DEVICE_TTL",
    "DYNAMIC_TTL",
    "OFFLINE_TTL",
    "PSEUDONYM_BYTES",
    "Alg",
    "Checkpoint",
    "Claims",
    "CodeClaimsError",
    "CodeError",
    "CodeFormatError",
    "CodeSignatureError",
    "CodeTimeError",
    "CodeType",
    "DccResult",
    "DeviceKey",
    "EntryStatus",
    "Inspection",
    "IssuerEntry",
    "KeyFileError",
    "KeyRing",
    "ListError",
    "NetworkError",
    "PseudonymKey",
    "Reason",
    "SignedStatusList",
    "SignedTimestamp",
    "SigningKey",
    "Status",
    "StatusDelta",
    "StatusList",
    "SuishenmaError",
    "Text",
    "TrustList",
    "TrustedKey",
    "UsageError",
    "VerificationKey",
    "VerifiedCode",
    "check_display_text",
    "credential_text",
    "dcc_signer",
    "encode_delta",
    "inspect",
    "list_digest",
    "load_signing_key",
    "load_verification_key",
    "mask_id_number",
    "mask_name",
    "mint",
    "mint_credential",
    "parse_checkpoint",
    "parse_delta",
    "parse_status_list",
    "parse_timestamp",
    "parse_trust_list",
    "passphrase_from_env",
    "present",
    "read_credential",
    "sign_checkpoint",
    "sign_status_list",
    "sign_timestamp",
    "sign_trust_list",
    "unprintable_character",
    "verify",
    "verify_dcc",
    "verify_presentation",
    "vouched",
    "write_key_pair",
]
