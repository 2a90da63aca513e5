"""Status List Tokens as the IETF Token Status List draft has them (CWT form, §4.3, §5.2, §7; January 2026).

The two Status Lists below are the draft's own test vectors (Appendix C.1 and C.2: 2**20 entries).
"""

from __future__ import annotations

import zlib
from typing import Any

import cbor2
import pytest

from suishenma import (
    EntryStatus,
    ListError,
    Reason,
    SigningKey,
    StatusList,
    UsageError,
    parse_status_list,
    sign_status_list,
)
from suishenma.labels import STATUS_LIST_TYP
from tests.conftest import NOW
from tests.suishenma import forge

DAY = 86400
DRAFT_C1 = bytes.fromhex(
    "a2646269747301636c737458bd78daeddc010dc0200c0041a88249400ad2903e0f4b"
    "ba00bd93f002beb7a2a2010000a91e09000000000000000000000000000000807296"
    "04000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000005c6f4800000000000000fc2c240000000000000000000000be1b12"
    "000000000000000000ecaa4b000000000000000000000000000000009b0b09000000"
    "00000000000038de9400000000000000002a30cc010000000080642f0bd8011b"
)
DRAFT_C1_SET = dict.fromkeys((0, 1993, 25460, 159495, 495669, 554353, 645645, 723232, 854545, 934534, 1000345), 1)
DRAFT_C2 = bytes.fromhex(
    "a2646269747302636c737459013d78daeddb310d00211000412ea1a04004fe5520ed"
    "357c28c81d3312b6df68bc65480000000000406e2101000000000000000000000000"
    "0000000000000000000000000000000000000040795b020000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000"
    "0080f4ba0400000000000000000000000000406d764a000000000000000000000000"
    "000000000000000000e0922101000000000000000000000000000000000000fc1312"
    "00000000000000000000000000000000000000000000000000000000000000c0912e"
    "01000000000000000000000000000000000000c07d4b020000000000000000000000"
    "00000000a8614a0000000000000000000000406a1fcd60010c"
)
DRAFT_C2_SET = {
    **dict.fromkeys((0, 25460, 495669, 554353, 723232, 854545), 1),
    **dict.fromkeys((1993, 645645, 934534), 2),
    **dict.fromkeys((159495, 1000345), 3),
}


def _claims(status_list: Any, *, ttl: Any = 60, size: int = 16) -> dict[int, Any]:
    return {1: "SH", 2: "u", 6: NOW, 4: NOW + DAY, 65534: ttl, 65533: status_list, -65537: {10: 1, 12: size}}


def _token(key: SigningKey, claims: dict[int, Any], *, tag: int | None = 18, cwt_tag: bool = False) -> bytes:
    token = forge.sign1(cbor2.dumps(claims), key, protected={1: -8, 4: key.kid, 16: STATUS_LIST_TYP}, tag=tag)
    return b"\xd8\x3d" + token if cwt_tag else token  # RFC 8392 §6: CWT tag 61


@pytest.mark.parametrize(("vector", "expected"), [(DRAFT_C1, DRAFT_C1_SET), (DRAFT_C2, DRAFT_C2_SET)])
def test_draft_test_vectors_read_index_by_index(ed_key: SigningKey, vector: bytes, expected: dict[int, int]) -> None:
    token = _token(ed_key, _claims(cbor2.loads(vector), size=1 << 20))
    sl = parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    assert all(sl.value(i) == v for i, v in expected.items())
    assert sl.value(1) == 0 and sl.value((1 << 20) - 1) == 0


def test_application_specific_status_is_not_valid(ed_key: SigningKey) -> None:
    """Value 3 (application-specific, §7.1) makes no statement a verifier can rely on: INVALID."""
    sl = parse_status_list(
        _token(ed_key, _claims(cbor2.loads(DRAFT_C2), size=1 << 20)), {ed_key.kid: ed_key.public()}, now=NOW
    )
    assert sl.value(159495) == 3 and sl.status(159495) is EntryStatus.INVALID
    assert sl.status(1993) is EntryStatus.SUSPENDED and sl.status(0) is EntryStatus.INVALID
    assert sl.status(1) is EntryStatus.VALID


@pytest.mark.parametrize("bits", [4, 8])
def test_wide_status_lists_read(ed_key: SigningKey, bits: int) -> None:
    """A verifier reads lists of 4 and 8 bits per token (§4.3), values beyond SUSPENDED as INVALID."""
    raw = bytearray(16 * bits // 8)
    raw[0] = 0x02 if bits == 8 else 0x20  # index 0 SUSPENDED (8 bits) or index 1 SUSPENDED (4 bits)
    raw[-1] = 0x0F << (8 - bits) if bits == 4 else 0xFF  # the last index: a reserved value
    token = _token(ed_key, _claims({"bits": bits, "lst": zlib.compress(bytes(raw), 9)}))
    sl = parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    assert sl.status(0 if bits == 8 else 1) is EntryStatus.SUSPENDED
    assert sl.value(15) == (1 << bits) - 1 and sl.status(15) is EntryStatus.INVALID
    assert sl.status(2) is EntryStatus.VALID


def test_our_issuers_still_write_one_or_two_bits() -> None:
    assert StatusList(8, 2).bits == 2
    with pytest.raises(UsageError, match="status lists have 1 or 2 bits"):
        StatusList(8, bits=8)


@pytest.mark.parametrize(
    ("tag", "cwt_tag"), [(None, False), (None, True), (18, True)], ids=["untagged", "cwt-untagged", "cwt-tagged"]
)
def test_status_list_token_outside_a_tagged_sign1_rejected(ed_key: SigningKey, tag: int | None, cwt_tag: bool) -> None:
    """§5.2: a COSE_Sign1 tagged 18, and never inside the CWT tag."""
    token = _token(ed_key, _claims({"bits": 1, "lst": zlib.compress(bytes(2))}), tag=tag, cwt_tag=cwt_tag)
    with pytest.raises(ListError) as exc:
        parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED and "tag 18" in exc.value.detail


@pytest.mark.parametrize("ttl", [0, -60, 1.5, "60"])
def test_status_list_ttl_must_be_a_positive_integer(ed_key: SigningKey, ttl: Any) -> None:
    token = _token(ed_key, _claims({"bits": 1, "lst": zlib.compress(bytes(2))}, ttl=ttl))
    with pytest.raises(ListError) as exc:
        parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED


@pytest.mark.parametrize("missing", [2, 6, 65533], ids=["sub", "iat", "status_list"])
def test_status_list_required_claims(ed_key: SigningKey, missing: int) -> None:
    claims = _claims({"bits": 1, "lst": zlib.compress(bytes(2))})
    del claims[missing]
    with pytest.raises(ListError) as exc:
        parse_status_list(_token(ed_key, claims), {ed_key.kid: ed_key.public()}, now=NOW)
    assert exc.value.reason is Reason.LIST_MALFORMED


def test_aggregation_uri_and_other_claims_are_ignored(ed_key: SigningKey) -> None:
    """§4.3 and §5.2: the status list may carry aggregation_uri, the token other claims."""
    body = {"bits": 1, "lst": zlib.compress(b"\x01\x00"), "aggregation_uri": "https://example.com/agg"}
    token = _token(ed_key, {**_claims(body), 3: "kiosks", 900: [1, 2]})
    assert parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW).status(0) is EntryStatus.INVALID


def test_huge_wide_list_refused_before_inflating(ed_key: SigningKey) -> None:
    """2**28 entries of 8 bits would inflate to 256 MiB: refused from the declared size alone."""
    token = _token(ed_key, _claims({"bits": 8, "lst": zlib.compress(bytes(8))}, size=1 << 28))
    with pytest.raises(ListError) as exc:
        parse_status_list(token, {ed_key.kid: ed_key.public()}, now=NOW)
    assert exc.value.reason is Reason.TOO_LARGE


def test_signed_list_is_a_tagged_sign1_with_the_draft_typ(ed_key: SigningKey) -> None:
    token = sign_status_list(StatusList(8), ed_key, uri="u", issuer="SH", version=1, now=NOW, valid_for=DAY, ttl=60)
    assert token[:1] == b"\xd2"
    protected = cbor2.loads(cbor2.loads(token).value[0])
    assert protected[16] == "application/statuslist+cwt"
