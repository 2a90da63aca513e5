"""Issuer keys in a PKCS#11 token, tested against a real module: SoftHSM2, with tokens made by each test in a
temporary folder. Codes and credentials signed in the token verify with the ordinary keyring; a token pulled
mid-burst or a wrong PIN turns ``/healthz`` and mints 503 with the reason, and the issuer recovers by itself."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from issuer import Settings, create_app
from issuer.api_keys import hash_api_key, new_api_key
from issuer.cli import main
from issuer.errors import KeyUnusable, Problem
from issuer.keys import pkcs11_tokens
from issuer.keys.pkcs11_keys import generate_token_key, open_token_key
from issuer.keys.pkcs11_uri import UriError, parse_uri
from issuer.opening import open_storage
from suishenma import Alg, DeviceKey, KeyFileError, SigningKey, VerificationKey, present, read_credential, verify

from .conftest import bearer, enrol, trust_list

PIN = "731942"
SO_PIN = "5678"


@pytest.fixture()
def backend() -> str:
    return "sqlite"  # what is tested is the key, not the storage


@dataclass
class SoftHSM:
    """A SoftHSM2 token folder of this test module's own; ``make`` adds a token, ``pull``/``put_back`` move one
    out of the folder and back, as a token is unplugged and plugged in again."""

    tokens: Path
    module: str

    def make(self) -> str:
        label = "t" + uuid.uuid4().hex[:12]
        before = set(self.tokens.iterdir())
        _run("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN)
        (made,) = set(self.tokens.iterdir()) - before
        (made / "label").write_text(label)  # SoftHSM2 ignores files it does not know
        return label

    def _folder(self, label: str) -> Path:
        return next(d for d in self.tokens.iterdir() if (d / "label").is_file() and (d / "label").read_text() == label)

    def pull(self, label: str) -> Path:
        folder = self._folder(label)
        away = self.tokens.parent / ("pulled-" + folder.name)
        folder.rename(away)
        return away

    def put_back(self, away: Path) -> None:
        away.rename(self.tokens / away.name.removeprefix("pulled-"))

    def keypair(self, label: str, key_type: str, obj: str, key_id: str) -> None:
        """A key pair made outside the issuer, as an operator makes it with OpenSC's pkcs11-tool."""
        _run(
            "pkcs11-tool", "--module", self.module, "--token-label", label, "--login", "--pin", PIN,
            "--keypairgen", "--key-type", key_type, "--label", obj, "--id", key_id,
        )  # fmt: skip


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, env=os.environ.copy())


def _module() -> str | None:
    return next((p for p in pkcs11_tokens.DEFAULT_MODULES if Path(p).is_file()), None)


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    module = _module()
    missing = [t for t in ("softhsm2-util", "pkcs11-tool") if shutil.which(t) is None]
    if module is None or missing:
        message = "SoftHSM2 or OpenSC is not installed (scripts/system-deps installs softhsm2 and opensc)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("softhsm")
    tokens = root / "tokens"
    tokens.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    kept = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by SoftHSM2 when it (re)initialises, and by its tools
    try:
        yield SoftHSM(tokens, module)
    finally:
        if kept is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = kept


@pytest.fixture(autouse=True)
def _token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUISHENMA_PKCS11_PIN", PIN)
    monkeypatch.delenv("SUISHENMA_PKCS11_MODULE", raising=False)
    monkeypatch.delenv("SUISHENMA_KEY_PASSPHRASE", raising=False)
    # a token made by a test is seen only after the module re-initialises: let it do so at once
    monkeypatch.setattr(pkcs11_tokens, "REINIT_INTERVAL_S", 0.0)


def _cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue() + err.getvalue()


def _init(base: Path, uri: str, *extra: str) -> dict[str, object]:
    code, out = _cli("--dir", str(base), "init", "--signing-key", uri, "--json", *extra)
    assert code == 0, out
    answer: dict[str, object] = json.loads(out)
    return answer


def _api_keys(settings: Settings) -> dict[str, str]:
    store = open_storage(settings)
    made = {}
    for scope in ("enrol", "mint"):
        made[scope] = new_api_key()
        name = f"{scope}-{uuid.uuid4().hex[:8]}"
        store.api_key_create(name, hash_api_key(made[scope]), [scope], 1000.0, int(time.time()), "test")
    store.close()
    return made


@contextlib.contextmanager
def _issuer(base: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(base_dir=base)
    keys = _api_keys(settings)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, keys


def _mint(client: TestClient, keys: dict[str, str], subject: str) -> tuple[int, dict[str, object]]:
    r = client.post(f"/v1/subjects/{subject}/codes", json={}, headers=bearer(keys["mint"]))
    body: dict[str, object] = r.json()
    return r.status_code, body


# --- pkcs11: URIs (RFC 7512) -------------------------------------------------------------------------------


def test_uri_names_token_object_and_id_and_reads_back_the_same() -> None:
    ref = parse_uri("pkcs11:token=City%20HSM;object=issuer;id=%01%a2?pin-source=file:/run/issuer.pin")
    assert (ref.token, ref.object, ref.id, ref.pin_source) == ("City HSM", "issuer", b"\x01\xa2", "/run/issuer.pin")
    assert parse_uri(ref.uri) == ref
    assert ref.display == "pkcs11:token=City%20HSM;object=issuer;id=%01%a2;type=private"  # no query, no PIN file


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("pkcs11:token=T;object=L?pin-value=1234", "pin-value is refused"),
        ("pkcs11:object=L", "name the token"),
        ("pkcs11:token=T", "name the key"),
        ("pkcs11:token=T;object=L;type=public", "type must be private"),
        ("pkcs11:token=T;object=L;colour=red", "unknown attribute 'colour'"),
        ("pkcs11:token=T;token=U;object=L", "attribute token given twice"),
        ("pkcs11:token=T;object=%zz", "a % that is not followed by two hex digits"),
        ("file:/etc/key", "it does not start with pkcs11:"),
    ],
)
def test_uri_that_cannot_name_a_key_is_refused_with_the_reason(uri: str, why: str) -> None:
    with pytest.raises(UriError) as refused:
        parse_uri(uri)
    assert str(refused.value).startswith(why)


def test_a_pin_in_the_uri_is_refused_on_the_command_line_without_echoing_it(tmp_path: Path) -> None:
    code, out = _cli("--dir", str(tmp_path), "init", "--signing-key", "pkcs11:token=T;object=L?pin-value=987123")
    assert code == 1 and "pin-value is refused" in out and "987123" not in out
    assert not (tmp_path / "var").exists()


# --- codes and credentials signed in the token ------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_codes_and_device_credentials_signed_in_the_token_verify(softhsm: SoftHSM, tmp_path: Path, alg: str) -> None:
    label = softhsm.make()
    answer = _init(tmp_path, f"pkcs11:token={label};object=issuer", "--alg", alg)
    kid = str(answer["kid"])
    assert answer["key_file"] is None and str(answer["signing_key"]).startswith(f"pkcs11:token={label};object=issuer")
    assert list((tmp_path / "keys").glob("issuer-*.key")) == []  # no private key on disk
    assert (tmp_path / "keys" / f"issuer-{kid}.pub").is_file()
    with _issuer(tmp_path) as (client, keys):
        now = int(time.time())
        trust = trust_list(client, tmp_path, now)
        assert [k.alg for k in trust.keys_for("SH").values()] == [Alg[alg]]
        subject = enrol(client, keys["enrol"])
        status, body = _mint(client, keys, subject)
        assert status == 200, body
        v = verify(str(body["code"]), trust.keyring, now=now)
        assert v.kid.hex() == kid
        slot_keys = [SigningKey.generate(Alg.ES256) for _ in range(6)]
        r = client.post(
            f"/v1/subjects/{subject}/device-credentials",
            json={
                "jwk": DeviceKey.of(SigningKey.generate()).to_jwk(),
                "keys": [DeviceKey.of(k).to_jwk() for k in slot_keys],
            },
            headers=bearer(keys["mint"]),
        )
        assert r.status_code == 201, r.text
        first = r.json()["credentials"][0]
        at = int(first["valid_from"]) + 60
        shown = present(read_credential(first["credential"]), slot_keys[0], now=at)
        assert verify(shown, trust.keyring, now=at).kid.hex() == kid


def test_a_key_made_with_pkcs11_tool_is_used_as_it_is(softhsm: SoftHSM, tmp_path: Path) -> None:
    label = softhsm.make()
    softhsm.keypair(label, "EC:prime256v1", "city-2027", "c17e")
    answer = _init(tmp_path, f"pkcs11:token={label};id=%c1%7e")
    exported = VerificationKey.from_pem((tmp_path / "keys" / f"issuer-{answer['kid']}.pub").read_bytes())
    key = open_token_key(parse_uri(f"pkcs11:token={label};object=city-2027"))
    assert key.alg is Alg.ES256 and exported.der == key.public().der and key.kid.hex() == answer["kid"]


def test_the_private_key_never_leaves_the_token(softhsm: SoftHSM, tmp_path: Path) -> None:
    label = softhsm.make()
    code, out = _cli("keys", "generate", "--signing-key", f"pkcs11:token={label};object=k1", "--json")
    assert code == 0, out
    made = json.loads(out)
    assert "PRIVATE" not in out and made["alg"] == "ES256"
    assert VerificationKey.from_pem(made["public_key"].encode()).kid.hex() == made["kid"]
    key = open_token_key(parse_uri(made["signing_key"]))
    with pytest.raises(KeyFileError) as refused:
        key.pem()
    assert refused.value.detail == "the private key stays in its token: it cannot be written out"
    again, out = _cli("keys", "generate", "--signing-key", f"pkcs11:token={label};object=k1")
    assert again == 1 and "the token already holds" in out  # never a second k1, never an overwrite


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_the_token_key_refuses_export_and_copies_are_the_same_handle(softhsm: SoftHSM, alg: str) -> None:
    """Code handed the ``cryptography`` key (a serialiser, a deep copy of settings) gets no key material."""
    label = softhsm.make()
    code, out = _cli("keys", "generate", "--signing-key", f"pkcs11:token={label};object=k2", "--alg", alg, "--json")
    assert code == 0, out
    private = open_token_key(parse_uri(json.loads(out)["signing_key"])).private_key
    with pytest.raises(KeyFileError) as refused:
        private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    assert refused.value.detail == "the private key stays in its token: it cannot be written out"
    assert copy.copy(private) is private and copy.deepcopy(private) is private


# --- failures: a pulled token, a wrong PIN ----------------------------------------------------------------


def test_token_pulled_mid_burst_gives_503_with_the_reason_and_the_issuer_recovers(
    softhsm: SoftHSM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    label = softhsm.make()
    _init(tmp_path, f"pkcs11:token={label};object=issuer")
    with _issuer(tmp_path) as (client, keys):
        subject = enrol(client, keys["enrol"])
        answers = []
        for i in range(30):
            if i == 10:
                away = softhsm.pull(label)
            if i == 20:
                softhsm.put_back(away)
                assert client.get("/healthz").json() == {"ok": True}
            if i == 15:
                h = client.get("/healthz")
                assert h.status_code == 503 and h.json()["reason"] == "token_missing"
                assert "is not there" in h.json()["message_en"] and "令牌" in h.json()["message_zh"]
            answers.append(_mint(client, keys, subject))
    assert [s for s, _ in answers] == [200] * 10 + [503] * 10 + [200] * 10
    assert all(b["detail"] == {"reason": "token_missing"} for s, b in answers if s == 503)
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text
    assert any("cannot sign" in m and "is not there" in m for m in caplog.messages)


def test_wrong_pin_gives_503_never_reaches_a_log_and_is_not_tried_again(
    softhsm: SoftHSM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    label = softhsm.make()
    _init(tmp_path, f"pkcs11:token={label};object=issuer")
    wrong = "000999111"
    monkeypatch.setenv("SUISHENMA_PKCS11_PIN", wrong)
    pkcs11_tokens.module_for(parse_uri(f"pkcs11:token={label};object=x")).forget(
        parse_uri(f"pkcs11:token={label};object=x")
    )
    looked = []
    find = pkcs11_tokens.TokenModule._find_token
    monkeypatch.setattr(
        pkcs11_tokens.TokenModule, "_find_token", lambda self, lib, ref: looked.append(1) or find(self, lib, ref)
    )
    caplog.set_level(logging.DEBUG)
    with _issuer(tmp_path) as (client, keys):
        subject = enrol(client, keys["enrol"])
        h = client.get("/healthz")
        assert h.status_code == 503 and h.json()["reason"] == "pin_wrong"
        tries = len(looked)
        status, body = _mint(client, keys, subject)
        assert status == 503 and body["detail"] == {"reason": "pin_wrong"}
        assert client.get("/healthz").json()["reason"] == "pin_wrong"
        assert len(looked) == tries  # the refused PIN was not offered to the token again
        monkeypatch.setenv("SUISHENMA_PKCS11_PIN", PIN)
        assert client.get("/healthz").json() == {"ok": True}
        assert _mint(client, keys, subject)[0] == 200
    assert wrong not in caplog.text and PIN not in caplog.text and wrong not in h.text
    code, out = _cli("--dir", str(tmp_path), "keys", "rotate", "--signing-key", f"pkcs11:token={label};object=n")
    assert code == 0 and PIN not in out


def test_a_pin_source_file_opens_the_token_and_a_missing_pin_is_named(
    softhsm: SoftHSM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = softhsm.make()
    pin_file = tmp_path / "issuer.pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o400)
    monkeypatch.delenv("SUISHENMA_PKCS11_PIN")
    ref = parse_uri(f"pkcs11:token={label};object=k?pin-source=file:{pin_file}")
    made, key = generate_token_key(ref, Alg.ES256)
    assert made.pin_source == str(pin_file) and key.alg is Alg.ES256
    other = softhsm.make()
    with pytest.raises(KeyUnusable) as refused:
        open_token_key(parse_uri(f"pkcs11:token={other};object=k"))
    assert refused.value.problem is Problem.PIN_MISSING and "SUISHENMA_PKCS11_PIN is not set" in str(refused.value)


def test_serve_refuses_to_start_when_the_token_is_missing(
    softhsm: SoftHSM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    label = softhsm.make()
    _init(tmp_path, f"pkcs11:token={label};object=issuer")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("served without a token"))
    away = softhsm.pull(label)
    try:
        code, out = _cli("--dir", str(tmp_path), "serve")
    finally:
        softhsm.put_back(away)
    assert code == 1 and "is not there" in out and "令牌" in out


# --- rotation ---------------------------------------------------------------------------------------------


def test_rotation_to_a_new_token_key_keeps_the_old_one_trusted(softhsm: SoftHSM, tmp_path: Path) -> None:
    label = softhsm.make()
    old = str(_init(tmp_path, f"pkcs11:token={label};object=issuer-2026")["kid"])
    with _issuer(tmp_path) as (client, keys):
        subject = enrol(client, keys["enrol"])
        status, before = _mint(client, keys, subject)
        assert status == 200
    refused, out = _cli("--dir", str(tmp_path), "keys", "rotate")
    assert refused == 1 and "is in a token" in out  # never silently replaced by a key file
    new_key = f"pkcs11:token={label};object=issuer-2027"
    code, out = _cli("--dir", str(tmp_path), "keys", "rotate", "--signing-key", new_key, "--json")
    assert code == 0, out
    rotated = json.loads(out)
    assert rotated["retired"] == old and rotated["kid"] != old and rotated["trust_list_version"] == 2
    assert list((tmp_path / "keys").glob("issuer-*.key")) == []
    with _issuer(tmp_path) as (client, keys):
        now = int(time.time())
        trust = trust_list(client, tmp_path, now)
        assert {k.hex() for k in trust.keys_for("SH")} == {old, rotated["kid"]}
        assert verify(str(before["code"]), trust.keyring, now=now).kid.hex() == old  # codes of the old key live on
        status, after = _mint(client, keys, subject)
        assert status == 200 and verify(str(after["code"]), trust.keyring, now=now).kid.hex() == rotated["kid"]


def test_a_file_key_issuer_moves_its_key_into_a_token(softhsm: SoftHSM, home: Path) -> None:
    label = softhsm.make()
    code, out = _cli(
        "--dir", str(home), "keys", "rotate", "--signing-key", f"pkcs11:token={label};object=moved", "--json"
    )
    assert code == 0, out
    with _issuer(home) as (client, keys):
        now = int(time.time())
        status, body = _mint(client, keys, enrol(client, keys["enrol"]))
        v = verify(str(body["code"]), trust_list(client, home, now).keyring, now=now)
        assert (
            status == 200 and v.kid.hex() == json.loads(out)["kid"] and v.alg is Alg.EdDSA
        )  # rotation keeps the algorithm
