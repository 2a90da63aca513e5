"""The main job on the embedded defaults (README "Quick start").

1. Core: makes development keys under keys/ (once), signs a trust list, mints a code for a demo
   person, renders its QR to out/demo-code.png and verifies it offline, printing the verdict.
2. Issuer: initialises the issuer here (var/issuer.db, keys/issuer-*.key, keys/root.key) once,
   starts it on the embedded SQLite default, enrols a demo person and prints the wallet page's URL.
   A phone key is registered for the person and a device-bound code made from its credential, offline.
3. Verifier: a venue verifier under var/demo-venue syncs from the issuer and verifies both codes.
4. Scanner: a short generated video of the person's phone runs through the kiosk scanner headless,
   which prints one JSON line per verdict.
   With a terminal attached it keeps serving until Ctrl-C; otherwise (or with --no-wait) it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from suishenma import (  # noqa: E402
    Alg,
    Claims,
    DeviceKey,
    IssuerEntry,
    SigningKey,
    Status,
    SuishenmaError,
    load_signing_key,
    mint,
    parse_trust_list,
    present,
    read_credential,
    sign_trust_list,
    verify,
    write_key_pair,
)
from suishenma.qr import save_qr  # noqa: E402
from testing.live_issuer import LiveIssuer, create_api_key, init_dir  # noqa: E402

KEYS = ROOT / "keys"
OUT = ROOT / "out"
DAY = 86400


def dev_key(name: str) -> SigningKey:
    """Load keys/NAME.key, making it on first use (development keys only)."""
    path = KEYS / f"{name}.key"
    if not path.exists():
        write_key_pair(SigningKey.generate(), KEYS / name)
        print(f"made development key {path}")
    return load_signing_key(path)


def step_core() -> int:
    OUT.mkdir(exist_ok=True)
    now = int(time.time())
    root, issuer = dev_key("dev-root"), dev_key("dev-issuer")
    entry = IssuerEntry(issuer.public(), "SH", now - DAY, now + 365 * DAY)
    trust_bytes = sign_trust_list([entry], root, version=1, now=now, ttl=7 * DAY)
    (OUT / "trust-list.cwt").write_bytes(trust_bytes)

    claims = Claims.dynamic(os.urandom(8), Status.GREEN, now, name="张小三", id_number="310101199001011234")
    code = mint(claims, issuer)
    version = save_qr(code, OUT / "demo-code.png")
    print(f"code ({len(code)} characters, QR version {version} at ECC M):\n{code}")
    print(f"QR image: {OUT / 'demo-code.png'}")

    trust = parse_trust_list(trust_bytes, root.public(), now=now)
    try:
        v = verify(code, trust.keyring, now=now)
    except SuishenmaError as exc:
        print(f"DENY  {exc.reason.value}: {exc.message_en} / {exc.message_zh}")
        return 1
    c = v.claims
    print(f"ALLOW {c.status.name.lower()} {c.masked_name} {c.masked_id} issuer={c.issuer} kid={v.kid.hex()}")
    return 0


def _post(url: str, key: str, body: dict[str, object]) -> dict[str, object]:
    data = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers)) as r:
        result: dict[str, object] = json.loads(r.read())
        return result


def step_issuer(port: int) -> tuple[LiveIssuer, str, list[str]]:
    """Start the issuer here; enrol a demo person. Returns the server, the subject, a venue code and a
    device-bound code made by the person's phone."""
    with contextlib.redirect_stdout(io.StringIO()):
        init_dir(ROOT)
    key = create_api_key(ROOT, f"demo-{int(time.time())}", "enrol,status,mint,revoke,kiosk")
    try:
        server = LiveIssuer(ROOT, port, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}).start()
    except RuntimeError:  # the port is taken: any free one will do
        server = LiveIssuer(ROOT, env={"SUISHENMA_ISSUER_DEMO_WALLET": "1"}).start()
    person = {"name": "李明", "id_number": "310104198512120012"}
    subject = str(_post(server.url + "/v1/subjects", key, person)["subject"])
    code = str(_post(f"{server.url}/v1/subjects/{subject}/codes", key, {"scenario": "venue"})["code"])
    print(f"\nissuer running at {server.url} (API docs {server.url}/docs), database {ROOT / 'var' / 'issuer.db'}")
    print(f"demo person enrolled as subject {subject}")
    print(f"wallet page: {server.url}/demo/wallet/{subject}")
    # A phone keeps its own key in hardware, as P-256, and makes a fresh key for each slot of its batch.
    phone = SigningKey.generate(Alg.ES256)
    slot_keys = [SigningKey.generate(Alg.ES256) for _ in range(6)]
    body = {"jwk": DeviceKey.of(phone).to_jwk(), "keys": [DeviceKey.of(k).to_jwk() for k in slot_keys]}
    batch = _post(f"{server.url}/v1/subjects/{subject}/device-credentials", key, body)
    credentials = batch["credentials"]
    assert isinstance(credentials, list)
    now = int(time.time())
    current = next(i for i, c in enumerate(credentials) if c["valid_from"] <= now < c["expires_at"])
    device_code = present(read_credential(str(credentials[current]["credential"])), slot_keys[current], now=now)
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(credentials[-1]["expires_at"])))
    print(f"phone registered: {len(credentials)} credentials, one per {batch['slot'] // 3600}-hour slot, each with its")
    print(f"own key, pseudonym and status-list index; it makes its own codes until {until}, offline:")
    print(device_code)
    return server, subject, [code, device_code]


def step_verifier(issuer_url: str, codes: list[str]) -> int:
    """An offline verifier for a venue: state under var/, synced from the issuer, then the verdicts."""
    from suishenma import load_verification_key
    from verifier import Verifier

    state = ROOT / "var" / "demo-venue"
    shutil.rmtree(state, ignore_errors=True)  # a fresh gate each run: the issuer's port may differ
    root = load_verification_key(ROOT / "keys" / "root.pub")
    with Verifier.init(state, issuer_url, root, "venue", "demo-gate") as v:
        report = v.sync()
        print(f"verifier ({state}): trust list version {report.trust_list_version}, status lists {report.status_lists}")
        allowed = True
        for code in codes:
            verdict = v.verify(code)
            shown = " ".join(f"{k}={val}" for k, val in verdict.display.items())
            print(
                f"verdict: {verdict.decision.value} {verdict.message_zh} / {verdict.message_en} {shown}"
                f" ({verdict.elapsed_ms:.2f} ms)"
            )
            allowed = allowed and verdict.decision.value == "ALLOW"
    return 0 if allowed else 1


def step_scanner(code: str) -> int:
    """A short video of the person holding up their phone, run through the kiosk scanner headless."""
    import random

    from scanner_app.cli import main as scanner
    from testing import synthetic_frames as synthetic

    video = OUT / "demo-door.avi"
    rng = random.Random(1)
    frames = [synthetic.empty_frame(rng.randrange(1 << 30)) for _ in range(5)]
    frames += [synthetic.frame(code, rng.randrange(1 << 30), hard=True) for _ in range(25)]
    synthetic.write_video(video, frames)
    print(f"\nscanner (headless) on {video}, {len(frames)} frames at 720p; one JSON line per verdict:")
    sys.stdout.flush()
    return scanner(["--state", str(ROOT / "var" / "demo-venue"), "--video", str(video), "--headless", "--no-sync"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Suishenma demo on the embedded defaults")
    ap.add_argument("--port", type=int, default=8000, help="issuer port (a free one if taken)")
    ap.add_argument("--no-wait", action="store_true", help="stop the issuer at the end instead of serving")
    args = ap.parse_args(argv)
    if step_core() != 0:
        return 1
    server, _subject, codes = step_issuer(args.port)
    try:
        step_verifier(server.url, codes)
        step_scanner(codes[0])
        if not args.no_wait and sys.stdin.isatty():
            print("serving; press Ctrl-C to stop")
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
