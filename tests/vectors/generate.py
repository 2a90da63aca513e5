"""Regenerate tests/vectors/*.json: deterministic inputs, expected outputs for other implementations.

Run from the project root: .venv/bin/python tests/vectors/generate.py
Ed25519 signatures are deterministic, so those vectors fix the exact code text. ES256 signatures are
randomized: its vector gives one valid code text and expects it to verify.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from gmalglib.sm2 import SM2 as GmalgSM2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from suishenma import (  # noqa: E402
    Alg,
    Claims,
    DeviceKey,
    EntryStatus,
    IssuerEntry,
    PseudonymKey,
    SigningKey,
    Status,
    StatusList,
    credential_text,
    encode_delta,
    list_digest,
    mint,
    mint_credential,
    present,
    sign_status_list,
    sign_timestamp,
    sign_trust_list,
)
from suishenma._base45 import b45decode, b45encode  # noqa: E402
from suishenma._cose import _sig_structure  # noqa: E402
from suishenma.sm2 import SM2PrivateKey  # noqa: E402
from suishenma.statusdelta import changes_between  # noqa: E402

OUT = Path(__file__).resolve().parent
AT = 1_790_000_000
ED_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
ED2_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
PHONE_SEED = bytes.fromhex("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7")
ES_SCALAR = int("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721", 16)
# GB/T 32918.5-2017 Annex A: the standard's example SM2 key (public key 09F9DF31...CCEA490C...).
SM2_SCALAR = int("3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8", 16)
SUBJECT = bytes.fromhex("0011223344556677")


def ed_key(seed: bytes) -> SigningKey:
    return SigningKey.from_private_key(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


def key_json(key: SigningKey) -> dict[str, Any]:
    raw = (
        key.private_key.private_bytes_raw()
        if key.alg.name in ("EdDSA", "SM2")
        else key.private_key.private_numbers().private_value.to_bytes(32, "big")
    )  # type: ignore[union-attr]
    return {"alg": key.alg.name, "private": raw.hex(), "public_spki_der": key.public().der.hex(), "kid": key.kid.hex()}


def claims_json(c: Claims) -> dict[str, Any]:
    return {
        "iss": c.issuer,
        "sub": c.subject.hex(),
        "iat": c.issued_at,
        "exp": c.expires_at,
        "status": int(c.status),
        "code_type": int(c.code_type),
        "masked_name": c.masked_name,
        "masked_id": c.masked_id,
        "status_index": c.status_index,
        "implied": c.implied,
    }


def vector(
    name: str, description: str, key: SigningKey, code: str, at: int, expect: dict[str, Any], **extra: Any
) -> None:
    body = {
        "name": name,
        "description": description,
        "key": key_json(key),
        "at": at,
        "code": code,
        "expect": expect,
        **extra,
    }
    (OUT / f"{name}.json").write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n")


def signed(key: SigningKey, payload: bytes, protected: dict[int, Any], tag: int | None = 18) -> bytes:
    p = cbor2.dumps(protected)
    sig = key.cose_key.sign(_sig_structure(p, payload))
    body = [p, {}, payload, sig]
    return cbor2.dumps(cbor2.CBORTag(tag, body) if tag else body)


def main() -> int:
    ed, other = ed_key(ED_SEED), ed_key(ED2_SEED)
    es = SigningKey.from_private_key(ec.derive_private_key(ES_SCALAR, ec.SECP256R1()))
    # the subs are pseudonyms, as an issuer mints them (current.json gives the key and nonces)
    pseudonym = PseudonymKey(PSEUDONYM_KEY)
    dyn = Claims.dynamic(pseudonym.pseudonym(SUBJECT, NONCES[0]), Status.GREEN, AT)
    hosp = Claims.dynamic(
        pseudonym.pseudonym(SUBJECT, NONCES[1]), Status.YELLOW, AT, name="张小三", id_number="310101199001011234"
    )
    off = Claims.offline(pseudonym.pseudonym(SUBJECT, NONCES[2]), Status.GREEN, AT, 1234, ttl=180 * 86400)
    valid = lambda c: {"valid": True, "claims": claims_json(c)}  # noqa: E731
    invalid = lambda reason: {"valid": False, "reason": reason}  # noqa: E731

    vector(
        "dynamic-green",
        "Dynamic code, no identity fields (QR version 7 at ECC M).",
        ed,
        mint(dyn, ed),
        AT + 30,
        valid(dyn),
    )
    vector("dynamic-hospital", "Dynamic code with masked name and ID.", ed, mint(hosp, ed), AT + 30, valid(hosp))
    vector("offline", "Offline (paper) code with a status-list index.", ed, mint(off, ed), AT + 86400, valid(off))
    vector("es256", "ES256 signature: randomized, so only the verdict is fixed.", es, mint(dyn, es), AT, valid(dyn))
    sm2 = SigningKey.from_private_key(SM2PrivateKey(SM2_SCALAR))
    vector(
        "sm2",
        "SM2 with SM3 (alg -65538), ID_A 1234567812345678, r || s; randomized, so only the verdict is fixed.",
        sm2,
        mint(dyn, sm2),
        AT,
        valid(dyn),
    )
    sm2_payload = cbor2.loads(b45decode(mint(dyn, sm2)[4:])).value[2]
    sm2_p = cbor2.dumps({1: int(Alg.SM2), 4: sm2.kid})
    alice = GmalgSM2(SM2_SCALAR.to_bytes(32, "big"), b"\x04" + sm2.public().public_key.point[1:], b"ALICE123@YAHOO.COM")
    other_id = cbor2.dumps(cbor2.CBORTag(18, [sm2_p, {}, sm2_payload, alice.sign(_sig_structure(sm2_p, sm2_payload))]))
    vector(
        "sm2-wrong-id",
        "SM2 signature made with ID_A ALICE123@YAHOO.COM instead of the default: must not verify.",
        sm2,
        "SM1:" + b45encode(other_id),
        AT,
        invalid("bad_signature"),
    )
    es_header = cbor2.dumps({1: int(Alg.ES256), 4: sm2.kid})
    es_on_sm2 = cbor2.dumps(
        cbor2.CBORTag(18, [es_header, {}, sm2_payload, sm2.cose_key.sign(_sig_structure(es_header, sm2_payload))])
    )
    vector(
        "sm2-es256-header",
        "Header says ES256, kid names an SM2 key (signature by that key over what it says).",
        sm2,
        "SM1:" + b45encode(es_on_sm2),
        AT,
        invalid("alg_mismatch"),
    )
    vector(
        "expired", "Verified 61 s after issue with 0 s skew.", ed, mint(dyn, ed), AT + 61, invalid("expired"), skew=0
    )
    vector(
        "not-yet-valid", "Verified 11 s before issue (10 s skew).", ed, mint(dyn, ed), AT - 11, invalid("not_yet_valid")
    )
    vector(
        "unknown-kid", "Signed by a key the verifier does not hold.", ed, mint(dyn, other), AT, invalid("unknown_kid")
    )
    code = mint(dyn, ed)
    msg = bytearray(b45decode(code[4:]))
    msg[-1] ^= 1
    vector(
        "bad-signature",
        "Last signature byte flipped.",
        ed,
        "SM1:" + b45encode(bytes(msg)),
        AT,
        invalid("bad_signature"),
    )
    vector("wrong-prefix", "HC1 prefix on an SM1 body.", ed, "HC1:" + code[4:], AT, invalid("wrong_prefix"))
    vector("bad-base45", "Group GGW decodes to 65536.", ed, "SM1:GGW", AT, invalid("bad_encoding"))
    payload = cbor2.dumps(dyn.to_cbor_map())
    untagged = signed(ed, payload, {1: -8, 4: ed.kid}, tag=None)
    vector("untagged", "COSE_Sign1 array without tag 18.", ed, "SM1:" + b45encode(untagged), AT, invalid("untagged"))
    confused = signed(ed, payload, {1: -7, 4: ed.kid})
    vector(
        "alg-mismatch",
        "Header says ES256, kid names an EdDSA key.",
        ed,
        "SM1:" + b45encode(confused),
        AT,
        invalid("alg_mismatch"),
    )
    huge = signed(ed, payload, {1: -8, 4: ed.kid, 99: cbor2.CBORTag(4, [2**63 - 1, 1])})
    vector(
        "decimal-tag",
        "Tag 4 (decimal fraction) with a 2^63-1 exponent in the protected header: tags are outside the subset.",
        ed,
        "SM1:" + b45encode(huge),
        AT,
        invalid("malformed"),
    )
    twice = signed(ed, payload[:-3] + b"\xa2\x00\x02\x00\x00", {1: -8, 4: ed.kid})
    vector(
        "duplicate-key",
        "Signed claims whose private map says status 2 and then status 0: a duplicate key is malformed.",
        ed,
        "SM1:" + b45encode(twice),
        AT,
        invalid("malformed"),
    )
    bidi = Claims(dyn.issuer, SUBJECT, AT, AT + 60, Status.GREEN, masked_name="张\u202e*")
    bidi_payload = cbor2.dumps(bidi.to_cbor_map())
    vector(
        "bidi-name",
        "Masked name holding U+202E (right-to-left override): not printable, so bad_claim.",
        ed,
        "SM1:" + b45encode(signed(ed, bidi_payload, {1: -8, 4: ed.kid})),
        AT,
        invalid("bad_claim"),
    )
    zipped = "SM1:" + b45encode(zlib.compress(b45decode(code[4:]), 9))
    vector("zlib", "A valid code sent zlib-compressed (decoders must accept it).", ed, zipped, AT, valid(dyn))

    root = ed_key(bytes(range(32)))
    entry = IssuerEntry(ed.public(), "SH", AT - 86400, AT + 365 * 86400, status_uri="/v1/status-lists/SH")
    tl = sign_trust_list([entry], root, version=3, now=AT, ttl=7 * 86400)
    lst = StatusList(64, 2)
    lst.set(3, EntryStatus.INVALID)
    lst.set(5, EntryStatus.SUSPENDED)
    sl = sign_status_list(lst, ed, uri="/v1/status-lists/SH", issuer="SH", version=9, now=AT, valid_for=86400, ttl=3600)
    lists = {
        "name": "lists",
        "description": "A trust list signed by the root and a 2-bit status list signed by the issuer.",
        "root": key_json(root),
        "issuer": key_json(ed),
        "at": AT,
        "trust_list": tl.hex(),
        "trust_list_expect": {"version": 3, "issuers": [{"issuer": "SH", "kid": ed.kid.hex()}]},
        "status_list": sl.hex(),
        "status_list_expect": {"version": 9, "bits": 2, "size": 64, "statuses": {"0": 0, "3": 1, "5": 2}},
    }
    (OUT / "lists.json").write_text(json.dumps(lists, indent=2) + "\n")
    device_vectors(ed, other)
    current_vectors(ed)
    freshness_vectors(ed)
    print(f"wrote vectors to {OUT}")
    return 0


def device_vectors(issuer: SigningKey, other: SigningKey) -> None:
    """devices.json: a device credential, the phone's key, and presentations with their verdicts.

    Both keys are Ed25519, so every byte is fixed: an implementation must reproduce the credential and
    each presentation exactly, and reach the same verdict at the same instant.
    """
    phone = ed_key(PHONE_SEED)
    claims = Claims.device(SUBJECT, Status.GREEN, AT, 4_000_000, DeviceKey.of(phone), ttl=86400)
    credential = mint_credential(claims, issuer)
    at, day_over = AT + 3600, AT + 86410
    good = present(credential, phone, now=at)
    # this credential, countersigned by another phone (the headers of its own presentation of it)
    other_cred = mint_credential(Claims.device(SUBJECT, Status.GREEN, AT, 1, DeviceKey.of(other)), issuer)
    other_headers = cbor2.loads(b45decode(present(other_cred, other, now=at)[5:])).value[1]
    parts = cbor2.loads(b45decode(good[5:])).value
    swapped = "SMD1:" + b45encode(cbor2.dumps(cbor2.CBORTag(18, [parts[0], other_headers, parts[2], parts[3]])))
    cases = [
        ("valid", "Presented one hour into the credential's day, verified 20 s later.", good, at, at + 20, None),
        ("screenshot", "The same presentation 71 s later (60 s life, 10 s skew).", good, at, at + 71, "expired"),
        ("other-phone", "This credential with another phone's countersignature.", swapped, at, at + 1,
         "bad_device_signature"),
        ("day-over", "Presented after the credential's day ended.", present(credential, phone, now=day_over),
         day_over, day_over, "credential_expired"),
    ]  # fmt: skip
    body = {
        "name": "devices",
        "description": "Device-bound codes (docs/format.md §4.2): the issuer key (issuer id SH), the phone's key, "
        "its credential, and presentations with the instant to verify at and the expected result.",
        "issuer": {**key_json(issuer), "issuer_id": "SH"},
        "phone": {**key_json(phone), "jwk": DeviceKey.of(phone).to_jwk()},
        "credential": credential_text(credential),
        "credential_claims": {**claims_json(claims), "iss": None},
        "presentations": [
            {
                "name": n,
                "description": d,
                "code": c,
                "presented_at": p,
                "at": t,
                "expect": {"valid": r is None} | ({"reason": r} if r else {}),
            }
            for n, d, c, p, t, r in cases
        ],
    }
    (OUT / "devices.json").write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n")


PSEUDONYM_KEY = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")  # FIPS-197 C.3
NONCES = (bytes.fromhex("0001020304050607"), bytes.fromhex("08090a0b0c0d0e0f"), bytes.fromhex("1011121314151617"))
SLOT = 14_400  # K = 6


def current_vectors(issuer: SigningKey) -> None:
    """current.json: the current forms (docs/format.md §4): the pseudonyms of one subject under a known key and
    nonces, a dynamic code and a slot credential built on them, and the previous forms' window.

    Everything is Ed25519 and AES, so every byte is fixed: an issuer implementation must reproduce the
    pseudonyms, the code and the presentation exactly; a verifier must reach each verdict at each instant,
    with the trust-list entry given (issuer id, slot, previous forms until).
    """
    key = PseudonymKey(PSEUDONYM_KEY)
    subs = [key.pseudonym(SUBJECT, nonce) for nonce in NONCES]
    dynamic = Claims.dynamic(subs[0], Status.GREEN, AT)
    code = mint(dynamic, issuer)
    phone = ed_key(PHONE_SEED)
    start = AT - AT % SLOT
    credential = mint_credential(
        Claims.device(subs[1], Status.GREEN, start, 9_000_001, DeviceKey.of(phone), slot=SLOT), issuer
    )
    presented = present(credential, phone, now=start + 600)
    previous = mint(Claims.dynamic(SUBJECT, Status.GREEN, AT, ttl=60), issuer)
    entry = {"issuer_id": "SH", "slot": SLOT, "previous_forms_until": AT - 1}
    cases = [
        ("dynamic", "Current dynamic code: no iss, no exp (iat + 60), sub a pseudonym.", code, AT + 30, None),
        ("dynamic-expired", "The same code at iat + 70 (60 s life, 10 s skew).", code, AT + 70, "expired"),
        ("slot-credential", "A slot credential presented 10 minutes into its slot.", presented, start + 610, None),
        ("slot-over", "The same presentation after its slot (exp implied: iat + slot).", presented,
         start + SLOT + 10, "credential_expired"),
        ("previous-form", "A dynamic code of the previous form (iss, exp, a fixed sub) after the window.",
         previous, AT, "previous_form"),
    ]  # fmt: skip
    body = {
        "name": "current",
        "description": "The current forms (docs/format.md §4): pseudonyms, a dynamic code, a slot credential, the"
        " previous forms' window. Verify each code with the issuer key constrained by the trust-list entry given.",
        "issuer": key_json(issuer),
        "trust_list_entry": entry,
        "pseudonym_key": PSEUDONYM_KEY.hex(),
        "subject": SUBJECT.hex(),
        "pseudonyms": [{"nonce": n.hex(), "sub": s.hex()} for n, s in zip(NONCES, subs, strict=True)],
        "phone": key_json(phone),
        "credential": credential_text(credential),
        "codes": [
            {
                "name": n,
                "description": d,
                "code": c,
                "at": t,
                "expect": {"valid": r is None} | ({"reason": r} if r else {}),
            }
            for n, d, c, t, r in cases
        ],
    }
    (OUT / "current.json").write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n")


def freshness_vectors(issuer: SigningKey) -> None:
    """freshness.json: two versions of a status list, the delta between them and a timestamp naming the second
    (docs/format.md §6). Ed25519, so every byte is fixed: an implementation must reproduce the digests, the
    delta and the timestamp exactly, and the delta applied to the first content must hash to the digest the
    timestamp names.
    """
    size = 4096
    first, second = StatusList(size, bits=2), StatusList(size, bits=2)
    first.set_many([3, 700], EntryStatus.INVALID)
    second.set_many([3, 1500, 4095], EntryStatus.INVALID)
    second.set(700, EntryStatus.SUSPENDED)
    digests = [list_digest(2, size, bytes(lst.data)) for lst in (first, second)]
    indices, values = changes_between(bytes(first.data), size, bytes(second.data), size, 2)
    delta = encode_delta(
        issuer="SH",
        from_version=7,
        to_version=8,
        from_digest=digests[0],
        to_digest=digests[1],
        bits=2,
        size=size,
        indices=indices,
        values=values,
    )
    stamp = sign_timestamp(issuer, issuer="SH", version=8, size=size, digest=digests[1], now=AT, valid_for=600)
    body = {
        "name": "freshness",
        "description": "Status-list versions 7 and 8 of issuer SH (2 bits, 4,096 entries), the delta from 7 to 8 and"
        " a timestamp naming version 8, signed by the issuer key. Apply the delta to version 7 and check the result"
        " against the timestamp's digest; the timestamp is valid from 'at' for 600 s.",
        "issuer": key_json(issuer),
        "at": AT,
        "versions": [
            {"version": 7, "bits": 2, "size": size, "content_zlib": zlib.compress(bytes(first.data), 9).hex(),
             "digest": digests[0].hex()},
            {"version": 8, "bits": 2, "size": size, "content_zlib": zlib.compress(bytes(second.data), 9).hex(),
             "digest": digests[1].hex()},
        ],
        "delta": {"hex": delta.hex(), "changes": [[i, v] for i, v in zip(indices, values, strict=True)]},
        "timestamp": stamp.hex(),
    }  # fmt: skip
    (OUT / "freshness.json").write_text(json.dumps(body, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
