"""The wallet's JavaScript phone side (static/device-wallet.js), run under Node's WebCrypto: the codes it
makes verify with the Python core, byte layout included. Quicker and more direct than the browser test."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from suishenma import (
    Claims,
    DeviceKey,
    KeyRing,
    SigningKey,
    Status,
    TrustedKey,
    credential_text,
    mint_credential,
    verify,
)
from suishenma import inspect as inspect_code
from tests.conftest import NOW, SUBJECT


@pytest.fixture()
def backend() -> str:
    """These tests are not about storage: the embedded default only."""
    return "sqlite"


SCRIPT = Path(__file__).resolve().parents[2] / "issuer" / "http" / "static" / "device-wallet.js"
HARNESS = """
import fs from "fs";
globalThis.window = { isSecureContext: true, crypto: globalThis.crypto, indexedDB: null };
globalThis.atob = (s) => Buffer.from(s, "base64").toString("binary");
const DeviceWallet = new Function(fs.readFileSync(process.argv[2], "utf8") + "; return DeviceWallet;")();
const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
process.stdout.write(JSON.stringify(await DeviceWallet.publicJwk(pair)) + "\\n");
const [credential, at] = fs.readFileSync(0, "utf8").trim().split(" ");
process.stdout.write(await DeviceWallet.present(DeviceWallet.b64urlDecode(credential), pair.privateKey, Number(at)));
"""


def test_codes_made_by_the_wallet_script_verify(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.mjs"
    harness.write_text(HARNESS)
    proc = subprocess.Popen([node, str(harness), str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    jwk = json.loads(proc.stdout.readline())
    assert set(jwk) == {"kty", "crv", "x", "y"}  # the public key only: the private key is not extractable
    issuer = SigningKey.generate()
    credential = mint_credential(Claims.device(SUBJECT, Status.GREEN, NOW, 70_000, DeviceKey.from_jwk(jwk)), issuer)
    code, _ = proc.communicate(f"{credential_text(credential)} {NOW + 30}\n", timeout=30)
    assert proc.returncode == 0
    verified = verify(code, KeyRing([TrustedKey(issuer.public(), "SH")]), now=NOW + 40)
    assert verified.presented_at == NOW + 30 and verified.claims.status_index == 70_000
    assert inspect_code(code).presented_at == NOW + 30
