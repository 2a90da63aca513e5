"""The frozen vectors in tests/vectors agree with this implementation (and pin the format)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishenma import (
    Claims,
    CodeType,
    DeviceKey,
    KeyRing,
    PseudonymKey,
    SigningKey,
    Status,
    SuishenmaError,
    TrustedKey,
    VerificationKey,
    credential_text,
    encode_delta,
    list_digest,
    mint,
    mint_credential,
    parse_delta,
    parse_status_list,
    parse_timestamp,
    parse_trust_list,
    present,
    sign_timestamp,
    verify,
)
from suishenma.statusdelta import changes_between

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
LIST_VECTORS = ("lists.json", "devices.json", "current.json", "freshness.json")
CODE_VECTORS = sorted(p for p in VECTORS.glob("*.json") if p.name not in LIST_VECTORS)


def _claims(c: dict[str, Any]) -> Claims:
    return Claims(
        c["iss"], bytes.fromhex(c["sub"]), c["iat"], c["exp"], Status(c["status"]), CodeType(c["code_type"]),
        c["masked_name"], c["masked_id"], c["status_index"], None, c.get("implied", False),
    )  # fmt: skip


def test_vectors_exist() -> None:
    assert len(CODE_VECTORS) >= 13


@pytest.mark.parametrize("path", CODE_VECTORS, ids=lambda p: p.stem)
def test_code_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    key = VerificationKey.from_der(bytes.fromhex(v["key"]["public_spki_der"]))
    assert key.kid.hex() == v["key"]["kid"]
    ring = KeyRing.of(key, issuer="SH")  # the issuer of a current-form code is its key's
    expect = v["expect"]
    if expect["valid"]:
        result = verify(v["code"], ring, now=v["at"], skew=v.get("skew", 10))
        assert result.claims == _claims(expect["claims"])
        if v["key"]["alg"] == "EdDSA" and v["name"] != "zlib":
            seed = bytes.fromhex(v["key"]["private"])
            signer = SigningKey.from_private_key(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
            assert mint(result.claims, signer) == v["code"]  # byte for byte
    else:
        with pytest.raises(SuishenmaError) as exc:
            verify(v["code"], ring, now=v["at"], skew=v.get("skew", 10))
        assert exc.value.reason.value == expect["reason"]


def test_list_vectors() -> None:
    v = json.loads((VECTORS / "lists.json").read_text())
    root = VerificationKey.from_der(bytes.fromhex(v["root"]["public_spki_der"]))
    issuer = VerificationKey.from_der(bytes.fromhex(v["issuer"]["public_spki_der"]))
    tl = parse_trust_list(bytes.fromhex(v["trust_list"]), root, now=v["at"])
    assert tl.version == v["trust_list_expect"]["version"]
    assert [(e.issuer, e.key.kid.hex()) for e in tl.issuers] == [
        (i["issuer"], i["kid"]) for i in v["trust_list_expect"]["issuers"]
    ]
    sl = parse_status_list(bytes.fromhex(v["status_list"]), {issuer.kid: issuer}, now=v["at"])
    exp = v["status_list_expect"]
    assert (sl.version, sl.bits, sl.size) == (exp["version"], exp["bits"], exp["size"])
    for index, status in exp["statuses"].items():
        assert sl.status(int(index)) == status


def test_device_vectors() -> None:
    """A second implementation must rebuild the credential and presentations byte for byte."""
    v = json.loads((VECTORS / "devices.json").read_text())
    issuer = VerificationKey.from_der(bytes.fromhex(v["issuer"]["public_spki_der"]))
    ring = KeyRing([TrustedKey(issuer, v["issuer"]["issuer_id"])])
    issuer_signer = SigningKey.from_private_key(
        ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["issuer"]["private"]))
    )
    phone = SigningKey.from_private_key(
        ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["phone"]["private"]))
    )
    assert DeviceKey.from_jwk(v["phone"]["jwk"]) == DeviceKey.of(phone)
    c = v["credential_claims"]
    claims = Claims.device(
        bytes.fromhex(c["sub"]), Status(c["status"]), c["iat"], c["status_index"], DeviceKey.of(phone),
        ttl=c["exp"] - c["iat"],
    )  # fmt: skip
    credential = mint_credential(claims, issuer_signer)
    assert credential_text(credential) == v["credential"]
    for p in v["presentations"]:
        if p["name"] in ("valid", "screenshot", "day-over"):
            assert present(credential, phone, now=p["presented_at"]) == p["code"]
        if p["expect"]["valid"]:
            result = verify(p["code"], ring, now=p["at"])
            assert result.presented_at == p["presented_at"] and result.claims.subject.hex() == c["sub"]
        else:
            with pytest.raises(SuishenmaError) as exc:
                verify(p["code"], ring, now=p["at"])
            assert exc.value.reason.value == p["expect"]["reason"], p["name"]


def test_current_form_vectors() -> None:
    """Pseudonyms, a current dynamic code and a slot credential, rebuilt byte for byte; every verdict."""
    v = json.loads((VECTORS / "current.json").read_text())
    key = PseudonymKey(bytes.fromhex(v["pseudonym_key"]))
    for p in v["pseudonyms"]:
        sub = key.pseudonym(bytes.fromhex(v["subject"]), bytes.fromhex(p["nonce"]))
        assert sub.hex() == p["sub"] and key.open(sub) == (bytes.fromhex(v["subject"]), bytes.fromhex(p["nonce"]))
    issuer = VerificationKey.from_der(bytes.fromhex(v["issuer"]["public_spki_der"]))
    signer = SigningKey.from_private_key(
        ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["issuer"]["private"]))
    )
    e = v["trust_list_entry"]
    ring = KeyRing([TrustedKey(issuer, e["issuer_id"], previous_forms_until=e["previous_forms_until"], slot=e["slot"])])
    for c in v["codes"]:
        if c["expect"]["valid"]:
            result = verify(c["code"], ring, now=c["at"])
            assert result.claims.implied and result.claims.subject.hex() in {p["sub"] for p in v["pseudonyms"]}
            if c["code"].startswith("SM1:"):
                assert mint(result.claims, signer) == c["code"]
        else:
            with pytest.raises(SuishenmaError) as exc:
                verify(c["code"], ring, now=c["at"])
            assert exc.value.reason.value == c["expect"]["reason"], c["name"]


def test_freshness_vectors() -> None:
    """Two list versions, the delta between them and a timestamp: every byte rebuilt, and the delta applied to
    the first version hashes to the digest the timestamp names."""
    v = json.loads((VECTORS / "freshness.json").read_text())
    signer = SigningKey.from_private_key(
        ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["issuer"]["private"]))
    )
    first, second = ({**x, "data": zlib.decompress(bytes.fromhex(x["content_zlib"]))} for x in v["versions"])
    for x in (first, second):
        assert list_digest(x["bits"], x["size"], x["data"]).hex() == x["digest"]
    delta = parse_delta(bytes.fromhex(v["delta"]["hex"]))
    assert [[i, val] for i, val in zip(delta.indices, delta.values, strict=True)] == v["delta"]["changes"]
    assert delta.apply(first["data"], 2, first["size"]) == second["data"]
    indices, values = changes_between(first["data"], first["size"], second["data"], second["size"], 2)
    rebuilt = encode_delta(
        issuer="SH",
        from_version=first["version"],
        to_version=second["version"],
        from_digest=bytes.fromhex(first["digest"]),
        to_digest=bytes.fromhex(second["digest"]),
        bits=2,
        size=second["size"],
        indices=indices,
        values=values,
    )
    assert rebuilt.hex() == v["delta"]["hex"]
    ts = parse_timestamp(bytes.fromhex(v["timestamp"]), {signer.kid: signer.public()}, now=v["at"] + 599)
    assert (ts.issuer, ts.version, ts.digest.hex()) == ("SH", 8, second["digest"])
    assert ts.size == second["size"]
    again = sign_timestamp(signer, issuer="SH", version=8, size=ts.size, digest=ts.digest, now=v["at"], valid_for=600)
    assert again.hex() == v["timestamp"]
