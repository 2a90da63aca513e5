"""The main job on the embedded defaults (README "Quick start").

1. Core: makes development keys under keys/ (once), signs a trust list, mints a code for a demo
   person, renders its QR to out/demo-code.png and verifies it offline, printing the verdict.
2. Issuer: initialises the issuer here (var/issuer.db, keys/issuer-*.key, keys/root.key) once,
   starts it on the embedded SQLite default, enrols a demo person and prints the wallet page's URL.
   A phone key is registered for the person and a device-bound code made from its credential, offline.
   Run again, the demo reuses what it made: the keys, the issuer, the enrolled person and the phone.
3. Verifier: a venue verifier under var/demo-venue syncs from the issuer and verifies both codes.
4. Scanner: a short generated video of the person's phone runs through the kiosk scanner headless,
   which prints one JSON line per verdict.
   With a terminal attached it keeps serving until Ctrl-C; otherwise (or with --no-wait) it stops.

Everything goes under this checkout (keys/, out/, var/), or under --dir. The issuer process is stopped
on every way out: the end, an error, Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

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

DAY = 86400
PERSON = {"name": "李明", "id_number": "310104198512120012"}
DEMO_ENV = {"SUISHENMA_ISSUER_DEMO_WALLET": "1"}

# Where the demo keeps its files: this checkout, or --dir (set once by main).
BASE = ROOT
KEYS = BASE / "keys"
OUT = BASE / "out"


def use_folder(base: Path) -> None:
    """Put keys/, out/ and var/ under ``base`` (made when missing)."""
    global BASE, KEYS, OUT
    BASE = base.resolve()
    BASE.mkdir(parents=True, exist_ok=True)
    KEYS, OUT = BASE / "keys", BASE / "out"
    KEYS.mkdir(exist_ok=True)


def dev_key(name: str, alg: Alg = Alg.EdDSA) -> SigningKey:
    """Load keys/NAME.key, making it on first use (development keys only)."""
    path = KEYS / f"{name}.key"
    if not path.exists():
        write_key_pair(SigningKey.generate(alg), KEYS / name)
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
        print(f"DENY  {exc.reason.value}: {exc.message_zh} / {exc.message_en}")
        return 1
    c = v.claims
    print(f"ALLOW {c.status.name.lower()} {c.masked_name} {c.masked_id} issuer={c.issuer} kid={v.kid.hex()}")
    return 0


def _post(url: str, key: str, body: Mapping[str, object]) -> dict[str, object]:
    data = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers)) as r:
        result: dict[str, object] = json.loads(r.read())
        return result


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (an issuer left from an earlier run would answer
    the new one's health check before the new one found its port taken)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prepare_issuer(port: int) -> LiveIssuer:
    """Initialise the issuer here (once) and say where it will listen: ``port``, or any free one if taken."""
    with contextlib.redirect_stdout(io.StringIO()):
        init_dir(BASE)
    if port_free(port):
        return LiveIssuer(BASE, port, env=DEMO_ENV)
    server = LiveIssuer(BASE, env=DEMO_ENV)
    print(f"端口 {port} 已被占用，发证服务改用 {server.port} / port {port} is taken: the issuer uses {server.port}")
    return server


def enrol(url: str, key: str) -> str:
    """The demo person's subject: enrolled now, or found from an earlier run.

    Raises:
        urllib.error.HTTPError: the issuer refused the enrolment for another reason than a repeat.
    """
    try:
        subject = str(_post(url + "/v1/subjects", key, PERSON)["subject"])
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
        # The API never says who holds an ID number (an enrol key could probe for people with it); the
        # demo runs on the issuer's own machine and looks its person up in the database instead.
        from issuer.opening import open_storage
        from issuer.settings import load_settings

        storage = open_storage(load_settings(base_dir=BASE))
        try:
            found = storage.subject_by_id_number(PERSON["id_number"])
        finally:
            storage.close()
        if found is None:
            raise
        print(f"demo person already enrolled (an earlier run) as subject {found}")
        return found
    print(f"demo person enrolled as subject {subject}")
    return subject


def step_issuer(server: LiveIssuer) -> tuple[str, list[str]]:
    """Start the issuer; enrol the demo person (once). Returns the subject, a venue code and a
    device-bound code made by the person's phone."""
    key = create_api_key(BASE, f"demo-{time.time_ns()}", "enrol,status,mint,revoke,kiosk")
    server.start()
    subject = enrol(server.url, key)
    code = str(_post(f"{server.url}/v1/subjects/{subject}/codes", key, {"scenario": "venue"})["code"])
    print(f"\nissuer running at {server.url} (API docs {server.url}/docs), database {BASE / 'var' / 'issuer.db'}")
    print(f"wallet page: {server.url}/demo/wallet/{subject}")
    # A phone keeps its own key in hardware, as P-256, and makes a fresh key for each slot of its batch.
    # The same phone each run: an issuer lets a person register only a few phones.
    phone = dev_key("demo-phone", Alg.ES256)
    slot_keys = [SigningKey.generate(Alg.ES256) for _ in range(6)]
    body = {"jwk": DeviceKey.of(phone).to_jwk(), "keys": [DeviceKey.of(k).to_jwk() for k in slot_keys]}
    batch = _post(f"{server.url}/v1/subjects/{subject}/device-credentials", key, body)
    credentials = batch["credentials"]
    assert isinstance(credentials, list)
    now = int(time.time())
    current = next(i for i, c in enumerate(credentials) if c["valid_from"] <= now < c["expires_at"])
    device_code = present(read_credential(str(credentials[current]["credential"])), slot_keys[current], now=now)
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(credentials[-1]["expires_at"])))
    hours = int(str(batch["slot"])) // 3600
    print(f"phone registered: {len(credentials)} credentials, one per {hours}-hour slot, each with its")
    print(f"own key, pseudonym and status-list index; it makes its own codes until {until}, offline:")
    print(device_code)
    return subject, [code, device_code]


def step_verifier(issuer_url: str, codes: list[str]) -> int:
    """An offline verifier for a venue: state under var/, synced from the issuer, then the verdicts."""
    from suishenma import load_verification_key
    from verifier import Verifier

    state = BASE / "var" / "demo-venue"
    shutil.rmtree(state, ignore_errors=True)  # a fresh gate each run: the issuer's port may differ
    root = load_verification_key(KEYS / "root.pub")
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
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        return scanner(["--state", str(BASE / "var" / "demo-venue"), "--video", str(video), "--headless", "--no-sync"])
    finally:  # the scanner sets its own SIGTERM handler; the demo's must stop the issuer afterwards
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _words(exc: Exception) -> tuple[str, str]:
    """What went wrong, in Chinese and English: the issuer's own words for a refused request."""
    if isinstance(exc, SuishenmaError):
        return exc.message_zh, exc.message_en
    if isinstance(exc, urllib.error.HTTPError):
        try:
            body = json.loads(exc.read())
            return f"{exc.code} {body['message_zh']}", f"{exc.code} {body['message_en']}"
        except (ValueError, KeyError, TypeError, OSError):
            pass
    return str(exc), str(exc)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM and SIGHUP end the demo as Ctrl-C does, so that its ``finally`` stops the issuer."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Suishenma demo on the embedded defaults")
    ap.add_argument("--port", type=int, default=8000, help="issuer port (a free one if taken)")
    ap.add_argument("--no-wait", action="store_true", help="stop the issuer at the end instead of serving")
    ap.add_argument("--dir", type=Path, default=ROOT, help="folder for keys/, out/ and var/ (default: this checkout)")
    args = ap.parse_args(argv)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    use_folder(args.dir)
    server: LiveIssuer | None = None
    try:
        if step_core() != 0:
            return 1
        server = prepare_issuer(args.port)
        _subject, codes = step_issuer(server)
        if step_verifier(server.url, codes) != 0:
            print("错误：演示的码未全部通过核验\nerror: not every demo code was allowed", file=sys.stderr)
            return 1
        if (scanned := step_scanner(codes[0])) != 0:
            print(f"错误：扫码终端以 {scanned} 退出\nerror: the scanner exited with {scanned}", file=sys.stderr)
            return 1
        if not args.no_wait and sys.stdin.isatty():
            print("服务中，按 Ctrl-C 停止 / serving; press Ctrl-C to stop")
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(1)
    except KeyboardInterrupt:
        print("\n已停止 / stopped", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C
    except (urllib.error.URLError, RuntimeError, SuishenmaError, OSError) as exc:
        zh, en = _words(exc)
        print(f"错误：演示未能完成（{zh}）\nerror: the demo could not finish: {en}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            for sig in handlers:  # a second Ctrl-C must not cut the stop short
                signal.signal(sig, signal.SIG_IGN)
            server.stop()  # on every way out: nothing is left listening
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
