"""Every CBOR label the code format uses, named once (DESIGN §2, docs/format.md).

Numbers appear nowhere else in the code: COSE header labels (RFC 9052 §3.1), CWT claim keys
(RFC 8392 §4), our private claim and its sub-keys, status values, code types, and the keys of the
trust list and status list tokens.
"""

from __future__ import annotations

from enum import IntEnum


class Header(IntEnum):
    """COSE common header parameters (RFC 9052 §3.1)."""

    ALG = 1
    KID = 4
    COUNTERSIGNATURE0 = 12  # Countersignature0 version 2 (RFC 9338 §2): the device's signature
    CWT_CLAIMS = 15  # RFC 9597: here, the presentation time {6: iat}
    TYP = 16  # RFC 9596


class Alg(IntEnum):
    """COSE algorithm identifiers (RFC 9053 §2, RFC 8230 §2, RFC 9864 §2.2; SM2 private use)."""

    EdDSA = -8
    ES256 = -7
    PS256 = -37
    # RFC 9864: the fully-specified identifier for EdDSA on Ed25519. Verification accepts it for an
    # Ed25519 key beside EdDSA; our issuers still mint EdDSA (docs/format.md §7).
    Ed25519 = -19
    # SM2 signature with SM3 (GB/T 32918.2, GM/T 0003.2), ID_A 1234567812345678, r || s. IANA has no
    # identifier for it: this one is from the private-use range (< -65536, RFC 9052 §16.4), the first
    # after the one our private claim uses; documented in docs/format.md §2.1.
    SM2 = -65538


class Claim(IntEnum):
    """Registered CWT claim keys (RFC 8392 §4) and the ones the status list draft adds."""

    ISS = 1
    SUB = 2
    EXP = 4
    IAT = 6
    CNF = 8  # RFC 8747: the device key a device credential is bound to
    STATUS_LIST = 65533  # draft-ietf-oauth-status-list, Status List Token
    TTL = 65534  # same draft
    # Our single private claim: a negative key below -65536 costs 5 bytes once (RFC 8392 §4).
    SUISHENMA = -65537


class SmField(IntEnum):
    """Keys inside the map held by ``Claim.SUISHENMA``; small so that each costs one byte."""

    STATUS = 0
    CODE_TYPE = 1  # omitted for dynamic codes, the common case, to keep them in QR version 7
    MASKED_NAME = 2
    MASKED_ID = 3
    STATUS_INDEX = 4  # offline codes: index into the issuer's status list
    # Trust and status list tokens reuse the private claim for their own fields.
    LIST_VERSION = 10
    TRUST_ISSUERS = 11
    LIST_SIZE = 12
    # Audit checkpoints (checkpoint.py): the id of the audit log's last row and that row's hash.
    AUDIT_SEQ = 13
    AUDIT_HEAD = 14
    # Timestamps (freshness.py): the digest of the status-list content the version names.
    LIST_DIGEST = 15


class Status(IntEnum):
    """Health status carried by a code."""

    GREEN = 0
    YELLOW = 1
    RED = 2


class CodeType(IntEnum):
    """What kind of code this is (DESIGN §2)."""

    DYNAMIC = 0
    OFFLINE = 1
    DEVICE = 2  # a device credential, shown only inside a presentation signed by the device


class Cnf(IntEnum):
    """Confirmation methods (RFC 8747 §3.1)."""

    COSE_KEY = 1


class KeyParam(IntEnum):
    """COSE_Key parameters (RFC 9052 §7.1, RFC 9053 §7)."""

    KTY = 1
    CRV = -1
    X = -2
    Y = -3  # EC2: the y coordinate, or its sign bit as a boolean (point compression)
    D = -4  # the private key: never accepted in a confirmation key


class Kty(IntEnum):
    """COSE key types (RFC 9053 §7)."""

    OKP = 1
    EC2 = 2


class Crv(IntEnum):
    """COSE elliptic curves (RFC 9053 §7.1)."""

    P256 = 1
    Ed25519 = 6


class TrustField(IntEnum):
    """Keys of one issuer entry inside a trust list."""

    KID = 0
    ALG = 1
    PUBLIC_KEY = 2  # SubjectPublicKeyInfo, DER
    ISSUER = 3
    VALID_FROM = 4
    VALID_UNTIL = 5
    CODE_TYPES = 6
    STATUS_URI = 7
    PREVIOUS_FORMS_UNTIL = 8  # last instant the issuer's codes of the previous forms are accepted
    SLOT = 9  # seconds a device credential of the current form is valid (its exp is implied)
    TIMESTAMP_URI = 10  # where the issuer's signed timestamp is served (freshness.py)


class DeltaField(IntEnum):
    """Keys of a status-list delta (statusdelta.py)."""

    ISSUER = 1
    FROM_VERSION = 2
    TO_VERSION = 3
    FROM_DIGEST = 4  # the first bytes of the digests: names, the signed timestamp's digest is the proof
    TO_DIGEST = 5
    BITS = 6
    SIZE = 7  # entries of the result
    COUNT = 8  # changed entries
    RICE = 9  # the Rice parameter of the gaps
    CHANGES = 10


class EntryStatus(IntEnum):
    """Status list values (draft-ietf-oauth-status-list §7.1)."""

    VALID = 0
    INVALID = 1  # revoked
    SUSPENDED = 2


# draft-ietf-oauth-status-list §4.1, §4.3: a list holds 1, 2, 4 or 8 bits per token.
STATUS_LIST_BITS_ALLOWED = (1, 2, 4, 8)


# Text keys of the Status List CBOR map (draft-ietf-oauth-status-list §4.3).
STATUS_LIST_BITS = "bits"
STATUS_LIST_LST = "lst"
STATUS_LIST_TYP = "application/statuslist+cwt"
TRUST_LIST_TYP = "application/suishenma-trustlist+cwt"
CHECKPOINT_TYP = "application/suishenma-checkpoint+cwt"
TIMESTAMP_TYP = "application/suishenma-timestamp+cwt"
STATUS_DELTA_TYP = "application/suishenma-statusdelta+cbor"  # a media type only: a delta is not signed

CODE_PREFIX = "SM1:"
# Device-bound codes: another prefix, so verifiers that predate them refuse them as not theirs.
DEVICE_PREFIX = "SMD1:"
# RFC 9338 §3.3: the context of an abbreviated (Countersignature0) version 2 countersignature.
COUNTERSIGN0_CONTEXT = "CounterSignature0V2"
DCC_PREFIX = "HC1:"
# EU DCC claim key holding the health certificate (eHealth Network, DCC format §3.3.1).
DCC_HCERT_CLAIM = -260
# ... and the key of the EU DCC v1 inside it (same section).
DCC_EU_V1 = 1
# CBOR tags a DCC verifier meets (RFC 8392 §6, RFC 8949 §3.4.1): the CWT tag may wrap COSE_Sign1.
CWT_TAG = 61
DATE_TIME_TAG = 0
