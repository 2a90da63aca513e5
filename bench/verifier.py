"""Verifier speed: a full verify through the verifier against the core's verify, the local HTTP service
against the in-process verify, and a 32M-entry sync.

Full verify = transit policy on paper codes: signature, policy, status-list lookup, replay cache and
the durable (synchronous=FULL) scan-log write. The core baseline verifies the same codes in the same
run. The local service (``suishenma-verifier serve``, one uvicorn worker pinned to one core) takes
``POST /v1/verify`` of a venue paper code from ``wrk`` (pinned to the other core; async httpx in a child
process when wrk is not installed), in rounds alternating with the same verify in-process; medians
are compared. Sync downloads, verifies and stores a 32-million-entry 2-bit status list over loopback.

Last line: ``verifier/core = X.XXx  p99_ms = Y.Y  http_per_s = N  http_p99_ms = Y.Y  http/inproc = X.XX``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _load import run_httpx, run_wrk  # noqa: E402

from suishenma import (  # noqa: E402
    Claims,
    EntryStatus,
    IssuerEntry,
    SigningKey,
    Status,
    StatusList,
    mint,
    sign_status_list,
    sign_trust_list,
    verify,
)
from verifier import Decision, HttpxFetcher, Verifier  # noqa: E402

DAY = 86400
CONNECTIONS = 4


class Lists:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        bodies = self.bodies

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                body = bodies.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return H


def status_list(key: SigningKey, size: int, now: int, version: int, revoked_share: float) -> bytes:
    lst = StatusList(size, bits=2)
    rng = random.Random(1)
    # the benchmark's own codes use indices below 10,000; revocations land above them
    lst.set_many((rng.randrange(10_000, size) for _ in range(int(size * revoked_share))), EntryStatus.INVALID)
    return sign_status_list(
        lst, key, uri="/status/SH", issuer="SH", version=version, now=now, valid_for=7 * DAY, ttl=300
    )


def _pinned(cpu: int) -> list[str]:
    """``taskset -c cpu`` when it exists and the machine has that core: one core for the server, one for load."""
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > cpu else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_service(url: str, root: SigningKey, code: str, now: int, tmp: Path, rounds: int = 3) -> dict[str, float]:
    """verifications/s and p99 of the local service against the in-process verify (same scenario, same code)."""
    state = tmp / "service"
    Verifier.init(state, url, root.public(), "venue", "bench-http", fetcher=HttpxFetcher()).close()
    with Verifier.open(state) as v:
        assert v.sync(now=now).ok
    port = _free_port()
    cmd = [*_pinned(0), sys.executable, "-m", "verifier", "serve", "--state", str(state), "--port", str(port)]
    server = subprocess.Popen([*cmd, "--no-sync"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    script = tmp / "verify.lua"
    body = json.dumps({"code": code})
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    try:
        _wait_up(base + "/healthz")
        http, inproc = [], []
        for _ in range(rounds):
            if shutil.which("wrk"):
                # wrk pinned to the other core; one thread, a gate controller's few connections, 4 s a round
                http.append(run_wrk(base + "/v1/verify", 4, CONNECTIONS, script, tuple(_pinned(1))))
            else:
                http.append(run_httpx(base + "/v1/verify", 4, CONNECTIONS, "POST", body.encode(), ""))
            with Verifier.open(state) as v:
                n, t = 2000, time.perf_counter()
                for _ in range(n):
                    v.verify(code)
                inproc.append(n / (time.perf_counter() - t))
        req = urllib.request.Request(base + "/v1/verify", body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:  # what the load was answered: a real verdict
            assert json.loads(r.read())["decision"] == "ALLOW"
    finally:
        server.terminate()
        server.wait(10)
    rps = statistics.median(r["rps"] for r in http)
    return {
        "rps": rps,
        "p50": statistics.median(r["p50"] for r in http),
        "p99": statistics.median(r["p99"] for r in http),
        "errors": sum(r["errors"] for r in http),
        "inproc": statistics.median(inproc),
        "tool": 1.0 if shutil.which("wrk") else 0.0,
    }


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the verifier service did not answer {url}")


def main() -> int:
    now = int(time.time())
    root, issuer = SigningKey.generate(), SigningKey.generate()
    lists = Lists()
    entry = IssuerEntry(issuer.public(), "SH", now - DAY, now + 365 * DAY, status_uri="/status/SH")
    trust_body = sign_trust_list([entry], root, version=1, now=now, ttl=30 * DAY)
    lists.bodies["/v1/trust-list"] = trust_body
    lists.bodies["/status/SH"] = status_list(issuer, 1 << 16, now, 1, 0.01)

    n = 3000
    codes = [mint(Claims.offline(i.to_bytes(8, "big"), Status.GREEN, now, i + 1), issuer) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        v = Verifier.init(Path(tmp) / "gate", lists.url, root.public(), "transit", "bench", fetcher=HttpxFetcher())
        assert v.sync(now=now).ok
        ring = v.state.trust.keyring  # type: ignore[union-attr]
        for c in codes[:100]:  # warm up both paths
            verify(c, ring, now=now)
        full, core = [], []
        for i, c in enumerate(codes):  # interleaved, so both see the same machine state
            t = time.perf_counter()
            verify(c, ring, now=now)
            core.append(time.perf_counter() - t)
            t = time.perf_counter()
            verdict = v.verify(c, now=now)
            full.append(time.perf_counter() - t)
            if i >= 100:
                assert verdict.decision is Decision.ALLOW, verdict
        assert v.verify(codes[0], now=now).decision is Decision.DENY  # replay cache at work
        full.sort()
        core_med, full_med = statistics.median(core), statistics.median(full)
        p99 = full[int(len(full) * 0.99)] * 1000

        print(f"{'path':<34} {'median µs':>10} {'p99 µs':>9}")
        print(f"{'core verify':<34} {core_med * 1e6:10.1f} {sorted(core)[int(n * 0.99)] * 1e6:9.1f}")
        print(f"{'verifier.verify (transit, paper)':<34} {full_med * 1e6:10.1f} {p99 * 1000:9.1f}")

        paper = mint(Claims.offline(b"\x09" * 8, Status.GREEN, now, 5000), issuer)
        h = http_service(lists.url, root, paper, now, Path(tmp))
        print(
            f"local service POST /v1/verify (venue, paper code; {'wrk' if h['tool'] else 'httpx'},"
            f" {CONNECTIONS} connections, one worker on one core): {h['rps']:,.0f} verifications/s,"
            f" p50 {h['p50']:.2f} ms, p99 {h['p99']:.2f} ms,"
            f" errors {h['errors']:.0f}; in-process {h['inproc']:,.0f}/s"
        )

        size = 32_000_000
        t = time.perf_counter()
        lists.bodies["/status/SH"] = status_list(issuer, size, now, 2, 0.01)
        build = time.perf_counter() - t
        t = time.perf_counter()
        report = v.sync(now=now)
        sync_s = time.perf_counter() - t
        assert report.ok and report.status_lists["SH"] == 2, report
        print(
            f"sync of a {size:,}-entry status list (1 % revoked, {len(lists.bodies['/status/SH']) / 1024:.0f} KB):"
            f" {sync_s:.2f} s (building and signing it: {build:.1f} s)"
        )
        v.close()
    print(
        f"verifier/core = {full_med / core_med:.2f}x  p99_ms = {p99:.1f}  http_per_s = {h['rps']:.0f}"
        f"  http_p99_ms = {h['p99']:.1f}  http/inproc = {h['rps'] / h['inproc']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
