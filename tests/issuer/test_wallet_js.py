"""The wallet's JavaScript phone side (static/device-wallet.js), run under Node's WebCrypto: the codes it
makes with a slot's own key verify with the Python core, byte layout included, and its batch planning
(which slots to keep, which to ask for) holds. Quicker and more direct than the browser tests."""

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
PRELUDE = """
import fs from "fs";
globalThis.window = { isSecureContext: true, crypto: globalThis.crypto, indexedDB: null };
globalThis.atob = (s) => Buffer.from(s, "base64").toString("binary");
const DeviceWallet = new Function(fs.readFileSync(process.argv[2], "utf8") + "; return DeviceWallet;")();
"""
# Two slot keys made as the page makes them; their public JWKs out, then a credential for the second in,
# presented with that slot's private key.
HARNESS = (
    PRELUDE
    + """
const pairs = [await DeviceWallet.slotKey(), await DeviceWallet.slotKey()];
process.stdout.write(JSON.stringify(await Promise.all(pairs.map((p) => DeviceWallet.publicJwk(p)))) + "\\n");
const [credential, at] = fs.readFileSync(0, "utf8").trim().split(" ");
const bytes = DeviceWallet.b64urlDecode(credential);
process.stdout.write(await DeviceWallet.present(bytes, pairs[1].privateKey, Number(at)));
"""
)
# DeviceWallet.plan and .current on the cases given as JSON on stdin.
PLAN = (
    PRELUDE
    + """
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const out = cases.map(([slots, t, k]) => {
  const { keep, need, start } = DeviceWallet.plan(slots, t, k);
  const now = DeviceWallet.current(slots, t);
  return { keep: keep.map((s) => s.valid_from), need, start, current: now && now.valid_from };
});
process.stdout.write(JSON.stringify(out));
"""
)
SLOT = 14_400  # the default batch: six slots of four hours


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    return node


def test_codes_made_by_the_wallet_script_with_a_slot_key_verify(tmp_path: Path) -> None:
    node = _node()
    harness = tmp_path / "harness.mjs"
    harness.write_text(HARNESS)
    proc = subprocess.Popen([node, str(harness), str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    jwks = json.loads(proc.stdout.readline())
    for jwk in jwks:
        assert set(jwk) == {"kty", "crv", "x", "y"}  # the public key only: the private key is not extractable
    first, second = (DeviceKey.from_jwk(jwk) for jwk in jwks)
    assert first.thumbprint() != second.thumbprint()  # a fresh key for each slot
    issuer = SigningKey.generate()
    begins = NOW - NOW % SLOT
    credential = mint_credential(Claims.device(SUBJECT, Status.GREEN, begins, 70_000, second, slot=SLOT), issuer)
    code, _ = proc.communicate(f"{credential_text(credential)} {NOW + 30}\n", timeout=30)
    assert proc.returncode == 0
    keyring = KeyRing([TrustedKey(issuer.public(), "SH", slot=SLOT)])
    verified = verify(code, keyring, now=NOW + 40)
    assert verified.presented_at == NOW + 30 and verified.claims.status_index == 70_000
    assert verified.claims.device_key is not None and verified.claims.device_key.thumbprint() == second.thumbprint()
    assert verified.claims.expires_at == begins + SLOT
    assert inspect_code(code).presented_at == NOW + 30


def _slots(*starts: int) -> list[dict[str, int]]:
    return [{"valid_from": a, "expires_at": a + SLOT} for a in starts]


def test_plan_keeps_the_slots_from_now_on_and_renews_the_lacking_ones_when_half_a_day_is_left(tmp_path: Path) -> None:
    node = _node()
    harness = tmp_path / "plan.mjs"
    harness.write_text(PLAN)
    s = NOW - NOW % SLOT  # the start of the slot that holds NOW
    day = [s + i * SLOT for i in range(6)]
    cases = [
        (_slots(), NOW, 6),  # nothing held: a whole batch from now
        (_slots(*day), NOW, 6),  # a fresh batch: a day ahead, nothing to ask
        (_slots(*reversed(day)), s + 2 * SLOT + 10, 6),  # in the third slot: 16 h left, still enough
        (_slots(*day), s + 3 * SLOT + 10, 6),  # in the fourth: 12 h left, three slots from the end of the last
        (_slots(*day), s + 5 * SLOT, 6),  # the last slot's first second: five new slots
        (_slots(*day), s + 6 * SLOT, 6),  # all expired: dropped, a whole batch from now
        (_slots(day[0], day[1], day[3]), s + SLOT, 6),  # a gap: what follows it is dropped
        (_slots(day[0]), s - 1, 6),  # a slot not begun yet is not used
    ]
    proc = subprocess.run(
        [node, str(harness), str(SCRIPT)], input=json.dumps(cases), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got == [
        {"keep": [], "need": 6, "start": None, "current": None},
        {"keep": day, "need": 0, "start": s + 6 * SLOT, "current": s},
        {"keep": day[2:], "need": 0, "start": s + 6 * SLOT, "current": day[2]},
        {"keep": day[3:], "need": 3, "start": s + 6 * SLOT, "current": day[3]},
        {"keep": day[5:], "need": 5, "start": s + 6 * SLOT, "current": day[5]},
        {"keep": [], "need": 6, "start": None, "current": None},
        {"keep": day[1:2], "need": 5, "start": s + 2 * SLOT, "current": day[1]},
        {"keep": [], "need": 6, "start": None, "current": None},
    ]
