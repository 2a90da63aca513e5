"""The caps and limits of docs/format.md, written here as the literals the specification gives.

Each constant is compared with its specified value, and each cap is tried at its boundary: at the limit
the input passes that check, one past it the input is refused with its reason code. The values are
never taken from the code under test, so a cap changed in the code fails here.
"""

from __future__ import annotations

import zlib
from typing import Any

import cbor2
import pytest

from suishenma import (
    Claims,
    CodeFormatError,
    KeyRing,
    ListError,
    Reason,
    SigningKey,
    Status,
    StatusList,
    UsageError,
    _cbor,
    _text,
    checkpoint,
    claims,
    dcc,
    labels,
    masking,
    parse_status_list,
    parse_trust_list,
    statuslist,
    trustlist,
    verify,
)
from suishenma._cbor import CborError, loads
from suishenma.checkpoint import parse_checkpoint
from suishenma.trustlist import IssuerEntry, sign_trust_list
from tests.conftest import NOW, SUBJECT
from tests.suishenma import forge

MIB = 1024 * 1024


# --- the constants --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "specified"),
    [
        # §2 text transport: 4,296 characters (QR 40-L), decompression stops at 16,384 bytes
        pytest.param(_text.MAX_TEXT, 4296, id="text-characters"),
        pytest.param(_text.MAX_MESSAGE, 16_384, id="decompressed-bytes"),
        # §2, §4, §5, §6, §7 prefixes and typ headers
        pytest.param(labels.CODE_PREFIX, "SM1:", id="code-prefix"),
        pytest.param(labels.DEVICE_PREFIX, "SMD1:", id="device-code-prefix"),
        pytest.param(labels.DCC_PREFIX, "HC1:", id="dcc-prefix"),
        pytest.param(labels.TRUST_LIST_TYP, "application/suishenma-trustlist+cwt", id="trust-list-typ"),
        pytest.param(labels.STATUS_LIST_TYP, "application/statuslist+cwt", id="status-list-typ"),
        pytest.param(labels.CHECKPOINT_TYP, "application/suishenma-checkpoint+cwt", id="checkpoint-typ"),
        # §3 CBOR subset: nesting at most 8 containers deep
        pytest.param(_cbor.MAX_DEPTH, 8, id="cbor-depth"),
        # §4 claims: 512 bytes; iss 1-16 characters; sub 1-32 bytes; names <= 64, ID numbers <= 32 characters;
        # a status-list index < 2**32; skew 10 s; dynamic codes live 60 s; device credentials at most 86,400 s
        pytest.param(claims.MAX_CLAIMS_BYTES, 512, id="claims-bytes"),
        pytest.param(claims.MAX_ISSUER, 16, id="iss-characters"),
        pytest.param(claims.MAX_SUBJECT, 32, id="sub-bytes"),
        pytest.param(masking.MAX_NAME, 64, id="masked-name-characters"),
        pytest.param(masking.MAX_ID_NUMBER, 32, id="masked-id-characters"),
        pytest.param(claims.MAX_INDEX, 4_294_967_295, id="status-index"),
        pytest.param(claims.DEFAULT_SKEW, 10, id="skew-seconds"),
        pytest.param(claims.DYNAMIC_TTL, 60, id="dynamic-code-seconds"),
        pytest.param(claims.DEVICE_TTL, 86_400, id="device-credential-seconds"),
        # §5 trust list: 1 MiB and 1,000 issuers
        pytest.param(trustlist.MAX_TRUST_LIST_BYTES, 1_048_576, id="trust-list-bytes"),
        pytest.param(trustlist.MAX_ISSUERS, 1000, id="trust-list-issuers"),
        # §6 status list: 2**28 entries, 64 MiB inflated, 40 MiB compressed; read 1, 2, 4, 8 bits, write 1 or 2
        pytest.param(statuslist.MAX_ENTRIES, 268_435_456, id="status-list-entries"),
        pytest.param(statuslist.MAX_INFLATED_BYTES, 67_108_864, id="status-list-inflated-bytes"),
        pytest.param(statuslist.MAX_STATUS_LIST_BYTES, 41_943_040, id="status-list-bytes"),
        pytest.param(labels.STATUS_LIST_BITS_ALLOWED, (1, 2, 4, 8), id="status-list-bits-read"),
        pytest.param(statuslist.ALLOWED_BITS, (1, 2), id="status-list-bits-written"),
        # §6 audit checkpoints: 1,024 bytes; iss 1-16 characters; a SHA-256 head
        pytest.param(checkpoint.MAX_CHECKPOINT_BYTES, 1024, id="checkpoint-bytes"),
        pytest.param(checkpoint.MAX_ISSUER, 16, id="checkpoint-iss-characters"),
        pytest.param(checkpoint.HEAD_BYTES, 32, id="checkpoint-head-bytes"),
        # §7 EU DCC: 8 KiB of claims, skew 300 s
        pytest.param(dcc.MAX_DCC_CLAIMS_BYTES, 8192, id="dcc-claims-bytes"),
        pytest.param(dcc.DEFAULT_DCC_SKEW, 300, id="dcc-skew-seconds"),
    ],
)
def test_constant_is_the_specified_value(actual: object, specified: object) -> None:
    assert actual == specified


# --- CBOR nesting: 8 containers -------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    """``depth`` arrays, one inside the other, around a 0."""
    return b"\x81" * depth + b"\x00"


def test_cbor_depth_8_passes_and_9_is_refused() -> None:
    assert loads(_nested(8)) is not None
    with pytest.raises(CborError, match="nested too deeply"):
        loads(_nested(9))


def _arrays(depth: int) -> object:
    deep: object = 0
    for _ in range(depth):
        deep = [deep]
    return deep


@pytest.mark.parametrize("where", ["unprotected", "claims"])
def test_code_nested_8_deep_verifies_and_9_deep_is_malformed(where: str, ed_key: SigningKey, ring: KeyRing) -> None:
    """The header or claims map is the first container: 7 arrays inside it make 8."""

    def message(arrays: int) -> str:
        if where == "unprotected":
            return forge.text(forge.sign1(cbor2.dumps(forge.claims_map()), ed_key, unprotected={-1: _arrays(arrays)}))
        return forge.text(forge.sign1(cbor2.dumps(forge.claims_map(k99=_arrays(arrays))), ed_key))

    verify(message(7), ring, now=NOW)
    with pytest.raises(CodeFormatError) as exc:
        verify(message(8), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and "CBOR nested too deeply" in exc.value.detail


# --- claims: 64 items in 512 bytes ----------------------------------------------------------------------------


def _items(value: Any) -> int:
    """How many CBOR items ``value`` encodes to (a container counts itself, then each key and value)."""
    if isinstance(value, dict):
        return 1 + sum(_items(k) + _items(v) for k, v in value.items())
    if isinstance(value, list):
        return 1 + sum(_items(v) for v in value)
    return 1


def _signed(claims_map: dict[int, Any], key: SigningKey) -> str:
    return forge.text(forge.sign1(cbor2.dumps(claims_map), key))


def test_claims_of_512_bytes_verify_and_513_are_malformed(ed_key: SigningKey, ring: KeyRing) -> None:
    sized = {len(cbor2.dumps(forge.claims_map(k99=bytes(n)))): n for n in range(300, 500)}
    at_cap, over = forge.claims_map(k99=bytes(sized[512])), forge.claims_map(k99=bytes(sized[513]))
    assert len(cbor2.dumps(at_cap)) == 512 and len(cbor2.dumps(over)) == 513
    verify(_signed(at_cap, ed_key), ring, now=NOW)
    with pytest.raises(CodeFormatError) as exc:
        verify(_signed(over, ed_key), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and exc.value.detail == "claims: CBOR item larger than 512 bytes"


def test_claims_of_64_items_verify_and_65_are_malformed(ed_key: SigningKey, ring: KeyRing) -> None:
    base = _items(forge.claims_map(k99=[]))
    at_cap, over = forge.claims_map(k99=[0] * (64 - base)), forge.claims_map(k99=[0] * (65 - base))
    assert (_items(at_cap), _items(over)) == (64, 65)
    verify(_signed(at_cap, ed_key), ring, now=NOW)
    with pytest.raises(CodeFormatError) as exc:
        verify(_signed(over, ed_key), ring, now=NOW)
    assert exc.value.reason is Reason.MALFORMED and exc.value.detail == "claims: too many CBOR items"


# --- claim values: iss 16 characters, sub 32 bytes, names 64 and ID numbers 32 characters, index < 2**32 ---------


def test_claim_value_limits() -> None:
    Claims.dynamic(bytes(32), Status.GREEN, NOW, issuer="X" * 16, name="张" * 64, id_number="1" * 32)
    with pytest.raises(UsageError, match="issuer must have 1 to 16 characters"):
        Claims.dynamic(SUBJECT, Status.GREEN, NOW, issuer="X" * 17)
    with pytest.raises(UsageError, match="subject must have 1 to 32 bytes"):
        Claims.dynamic(bytes(33), Status.GREEN, NOW)
    with pytest.raises(UsageError, match="name must have 1 to 64 characters"):
        Claims.dynamic(SUBJECT, Status.GREEN, NOW, name="张" * 65)
    with pytest.raises(UsageError, match="ID number must be 1 to 32 letters or digits"):
        Claims.dynamic(SUBJECT, Status.GREEN, NOW, id_number="1" * 33)
    assert Claims.offline(SUBJECT, Status.GREEN, NOW, 2**32 - 1).status_index == 4_294_967_295
    with pytest.raises(UsageError, match="status index out of range"):
        Claims.offline(SUBJECT, Status.GREEN, NOW, 2**32)


# --- trust list: 1 MiB, 1,000 issuers -------------------------------------------------------------------------


def test_trust_list_of_1_mib_is_read_and_one_byte_more_is_too_large(ed_key: SigningKey) -> None:
    with pytest.raises(ListError) as exc:
        parse_trust_list(b"\xd2" + bytes(MIB - 1), ed_key.public(), now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED  # past the size check, refused for its structure
    with pytest.raises(ListError) as exc:
        parse_trust_list(b"\xd2" + bytes(MIB), ed_key.public(), now=NOW)
    assert exc.value.reason is Reason.TOO_LARGE and exc.value.detail == "trust list over 1048576 bytes"


def test_trust_list_of_1000_issuers_is_signed_and_1001_are_refused(ed_key: SigningKey) -> None:
    entries = [IssuerEntry(SigningKey.generate().public(), "SH", NOW - 10, NOW + 10) for _ in range(1001)]
    token = sign_trust_list(entries[:1000], ed_key, version=1, now=NOW, ttl=60)
    assert len(parse_trust_list(token, ed_key.public(), now=NOW).issuers) == 1000
    with pytest.raises(UsageError, match="at most 1000 issuers"):
        sign_trust_list(entries, ed_key, version=1, now=NOW, ttl=60)


def test_trust_list_of_1001_issuers_signed_by_hand_is_refused_by_the_reader(ed_key: SigningKey) -> None:
    from suishenma import _cbor, _cose
    from suishenma.labels import TRUST_LIST_TYP, Header

    entries = [IssuerEntry(SigningKey.generate().public(), "SH", NOW - 10, NOW + 10).to_cbor() for _ in range(1001)]
    claims = {1: "root", 6: NOW, 4: NOW + 60, -65537: {10: 1, 11: entries}}  # docs/format.md §5
    token = _cose.sign(_cbor.dumps(claims), ed_key, {Header.TYP: TRUST_LIST_TYP})
    with pytest.raises(ListError) as exc:
        parse_trust_list(token, ed_key.public(), now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED and exc.value.detail == "1001 issuers: at most 1000"


# --- status list: 2**28 entries, 64 MiB inflated, 40 MiB compressed ---------------------------------------------


def _status_token(key: SigningKey, bits: int, size: int) -> bytes:
    """A signed status list declaring ``size`` entries of ``bits`` bits over 8 bytes of data."""
    claims_map = {
        1: "SH",
        2: "u",
        6: NOW,
        4: NOW + 60,
        65534: 60,
        65533: {"bits": bits, "lst": zlib.compress(bytes(8))},
        -65537: {10: 1, 12: size},
    }
    return forge.sign1(
        cbor2.dumps(claims_map), key, protected={1: int(key.alg), 4: key.kid, 16: "application/statuslist+cwt"}
    )


def _status_error(data: bytes, key: SigningKey) -> ListError:
    with pytest.raises(ListError) as exc:
        parse_status_list(data, {key.kid: key.public()}, now=NOW)
    return exc.value


def test_status_list_of_40_mib_is_read_and_one_byte_more_is_too_large(ed_key: SigningKey) -> None:
    assert _status_error(b"\xd2" + bytes(40 * MIB - 1), ed_key).reason is Reason.LIST_MALFORMED
    err = _status_error(b"\xd2" + bytes(40 * MIB), ed_key)
    assert err.reason is Reason.TOO_LARGE and err.detail == "status list over 41943040 bytes"


def test_status_list_of_2_pow_28_entries_is_read_and_one_more_is_refused(ed_key: SigningKey) -> None:
    not_inflated = "list does not decompress to its declared size"  # past every cap: only the data is short
    err = _status_error(_status_token(ed_key, 1, 268_435_456), ed_key)
    assert err.reason is Reason.LIST_MALFORMED and err.detail == not_inflated
    err = _status_error(_status_token(ed_key, 1, 268_435_457), ed_key)
    assert err.reason is Reason.LIST_MALFORMED and err.detail == "bits must be 1, 2, 4 or 8, size within limits"
    assert StatusList(268_435_456).size == 268_435_456
    with pytest.raises(UsageError, match="1 to 268435456 entries"):
        StatusList(268_435_457)


def test_status_list_inflating_to_64_mib_is_read_and_one_byte_more_is_too_large(ed_key: SigningKey) -> None:
    err = _status_error(_status_token(ed_key, 4, 2 * 64 * MIB), ed_key)  # 2**27 entries of 4 bits: 64 MiB
    assert err.reason is Reason.LIST_MALFORMED and err.detail == "list does not decompress to its declared size"
    err = _status_error(_status_token(ed_key, 8, 64 * MIB + 1), ed_key)
    assert err.reason is Reason.TOO_LARGE and err.detail == "67108865 entries of 8 bits exceed 67108864 bytes"


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_status_list_bit_widths_read(bits: int, ed_key: SigningKey) -> None:
    token = _status_token(ed_key, bits, 64 // bits)  # 8 bytes of data
    assert parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW).bits == bits


def test_status_list_bit_widths_written() -> None:
    assert StatusList(8, 1).bits == 1 and StatusList(8, 2).bits == 2
    for bits in (4, 8):
        with pytest.raises(UsageError, match="status lists have 1 or 2 bits"):
            StatusList(8, bits)


# --- audit checkpoint: 1,024 bytes ----------------------------------------------------------------------------


def test_checkpoint_of_1024_bytes_is_read_and_one_byte_more_is_too_large(ed_key: SigningKey) -> None:
    keys = {ed_key.kid: ed_key.public()}
    with pytest.raises(ListError) as exc:
        parse_checkpoint(b"\xd2" + bytes(1023), keys)
    assert exc.value.reason is Reason.LIST_MALFORMED
    with pytest.raises(ListError) as exc:
        parse_checkpoint(b"\xd2" + bytes(1024), keys)
    assert exc.value.reason is Reason.TOO_LARGE and exc.value.detail == "checkpoint over 1024 bytes"
