"""Keys, key ids, key files and masking."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from suishenma import (
    Alg,
    KeyFileError,
    SigningKey,
    UsageError,
    VerificationKey,
    load_signing_key,
    load_verification_key,
    mask_id_number,
    mask_name,
    write_key_pair,
)


def test_kid_is_first_four_bytes_of_spki_sha256() -> None:
    key = SigningKey.generate()
    assert key.kid == hashlib.sha256(key.public().der).digest()[:4]
    assert key.public().kid == key.kid


def test_repr_never_shows_key_material() -> None:
    key = SigningKey.generate()
    assert "PRIVATE" not in repr(key) and key.kid.hex() in repr(key)


def test_key_files_roundtrip_and_encryption(tmp_path: Path) -> None:
    key = SigningKey.generate(Alg.ES256)
    priv, pub = write_key_pair(key, tmp_path / "k", b"secret")
    assert load_signing_key(priv, b"secret").kid == key.kid
    assert load_verification_key(pub).kid == key.kid
    with pytest.raises(KeyFileError, match="not a PEM private key, or wrong passphrase"):
        load_signing_key(priv, b"wrong")
    with pytest.raises(KeyFileError, match="exists; refusing to overwrite a key"):
        write_key_pair(key, tmp_path / "k")


def test_unusable_key_files_rejected(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    (tmp_path / "huge.pem").write_bytes(b"x" * 100_000)
    for name, public, private in (
        ("junk.pem", "not a PEM public key or certificate", "not a PEM private key"),
        ("huge.pem", "is larger than any key file", "is larger than any key file"),
        ("missing.pem", "cannot read", "cannot read"),
    ):
        with pytest.raises(KeyFileError) as exc:
            load_verification_key(tmp_path / name)
        assert public in exc.value.detail, name
        with pytest.raises(KeyFileError) as exc:
            load_signing_key(tmp_path / name)
        assert private in exc.value.detail, name


def test_unsupported_keys_rejected() -> None:
    with pytest.raises(KeyFileError, match="unsupported curve secp384r1"):
        VerificationKey.from_public_key(ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(KeyFileError, match="RSA keys below 2048 bits are not accepted"):
        VerificationKey.from_public_key(rsa.generate_private_key(65537, 1024).public_key())
    with pytest.raises(KeyFileError, match="key is EdDSA, not ES256"):
        VerificationKey.from_public_key(SigningKey.generate().private_key.public_key(), Alg.ES256)
    with pytest.raises(UsageError, match="cannot sign with PS256"):
        SigningKey.generate(Alg.PS256)


def test_rsa_keys_verify_only_as_ps256() -> None:
    key = VerificationKey.from_public_key(rsa.generate_private_key(65537, 2048).public_key())
    assert key.alg is Alg.PS256


@pytest.mark.parametrize(
    ("name", "masked"), [("张三", "张*"), ("张小三", "张*三"), ("欧阳小明", "欧*明"), ("李", "*"), (" Li Lei ", "L*i")]
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("310101199001011234", "3101**********1234"),
        ("31010119900101123x", "3101**********123X"),
        ("A1234567", "****4567"),
        ("123", "***"),
    ],
)
def test_mask_id_number(number: str, masked: str) -> None:
    assert mask_id_number(number) == masked


@pytest.mark.parametrize("bad", ["", "  ", "31-01", "x" * 33, "三一零"])
def test_mask_id_number_rejects_garbage(bad: str) -> None:
    with pytest.raises(UsageError, match="ID number must be 1 to 32 letters or digits"):
        mask_id_number(bad)
