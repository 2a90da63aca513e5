"""Verifier speed: a full verify through the verifier against the core's verify, and a 32M-entry sync.

Full verify = transit policy on paper codes: signature, policy, status-list lookup, replay cache and
the durable (synchronous=FULL) scan-log write. The core baseline verifies the same codes in the same
run. Sync downloads, verifies and stores a 32-million-entry 2-bit status list over loopback.

Last line: ``verifier/core = X.XXx  p99_ms = Y.Y``.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
    print(f"verifier/core = {full_med / core_med:.2f}x  p99_ms = {p99:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
