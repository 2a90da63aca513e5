"""An SM2 issuer: ``init --alg SM2`` makes an encrypted SM2 key, and rotation keeps SM2."""

from __future__ import annotations

from pathlib import Path

import pytest

from issuer.cli import main
from suishenma import Alg, load_signing_key, load_verification_key

from .conftest import storage_of


def test_sm2_issuer_init_and_rotation_keep_sm2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUISHENMA_KEY_PASSPHRASE", "correct horse")
    assert main(["--dir", str(tmp_path), "init", "--alg", "SM2"]) == 0
    assert main(["--dir", str(tmp_path), "keys", "rotate"]) == 0
    records = storage_of(tmp_path).signing_keys()
    assert [r.alg for r in records] == ["SM2", "SM2"]
    for rec in records:
        path = tmp_path / "keys" / rec.path
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        key = load_signing_key(path)
        assert key.alg is Alg.SM2 and key.kid.hex() == rec.kid
        assert load_verification_key(path.with_suffix(".pub")).kid == key.kid
    root = load_signing_key(tmp_path / "keys" / "root.key")
    assert root.alg is Alg.EdDSA  # the root stays Ed25519: kiosks pin it


def test_init_refuses_an_algorithm_we_do_not_sign_with(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(tmp_path), "init", "--alg", "PS256"]) == 2
    err = capsys.readouterr().err
    assert "--alg" in err and "SM2" in err
