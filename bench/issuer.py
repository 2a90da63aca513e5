"""Issuer throughput: the mint endpoint against a trivial endpoint on the same one-worker server.

Load comes from a separate process on loopback: ``wrk`` when installed (Debian package), else an
async httpx generator. Rounds alternate trivial / mint and the medians are compared, because the
machine is noisy. Also reports QR renders per second (zxing-cpp path against segno alone).

Last line: ``mint/trivial = X.XX  p99_ms = Y.Y  errors = N``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _load import run_httpx, run_wrk  # noqa: E402

from issuer.live import LiveIssuer, create_api_key, init_dir  # noqa: E402
from issuer.render import png, qr_matrix, svg  # noqa: E402
from suishenma.qr import make_qr  # noqa: E402


def post_json(url: str, key: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        result: dict[str, object] = json.loads(r.read())
        return result


def render_rates(text: str, n: int = 200) -> dict[str, float]:
    def rate(fn: object) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()  # type: ignore[operator]
        return n / (time.perf_counter() - start)

    def segno_png() -> None:
        make_qr(text).save(io.BytesIO(), kind="png", scale=8, border=4)

    return {
        "png (zxing-cpp + own writer)": rate(lambda: png(qr_matrix(text))),
        "svg (zxing-cpp + own writer)": rate(lambda: svg(qr_matrix(text))),
        "png (segno alone)": rate(segno_png),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        init_dir(base)
        key = create_api_key(base, "bench", "enrol,mint", rate=1e9)
        with LiveIssuer(base) as server:
            subject = post_json(server.url + "/v1/subjects", key, {"name": "张小三", "id_number": "310101199001011234"})
            mint_url = f"{server.url}/v1/subjects/{subject['subject']}/codes"
            trivial_url = server.url + "/healthz"
            use_wrk = shutil.which("wrk") is not None
            script = base / "mint.lua"
            script.write_text(
                'wrk.method = "POST"\nwrk.body = \'{"scenario":"venue"}\'\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {key}"\n'
            )

            def load(url: str, mint: bool) -> dict[str, float]:
                if use_wrk:
                    return run_wrk(url, args.seconds, args.connections, script if mint else None)
                body = b'{"scenario":"venue"}' if mint else b""
                return run_httpx(url, args.seconds, args.connections, "POST" if mint else "GET", body, key)

            load(trivial_url, False)  # warm up
            trivial, mint = [], []
            for _ in range(args.rounds):
                trivial.append(load(trivial_url, False))
                mint.append(load(mint_url, True))

    def med(rows: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in rows)

    print(f"load generator: {'wrk' if use_wrk else 'httpx'}, {args.connections} connections, one uvicorn worker")
    print(f"{'endpoint':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, rows in (("trivial", trivial), ("mint", mint)):
        errs = int(sum(r["errors"] for r in rows))
        print(f"{name:<10} {med(rows, 'rps'):9.0f} {med(rows, 'p50'):8.2f} {med(rows, 'p99'):8.2f} {errs:7d}")
    print("QR rendering of a dynamic code (renders/s):")
    code_text = "SM1:" + "6BFOXN*TS0BI$ZD.P9UOL97O4-2HH77HRM3DSPTLRR+%3" * 4
    for name, rate in render_rates(code_text).items():
        print(f"  {name:<30} {rate:8.0f}/s  ({1000 / rate:.2f} ms)")
    ratio = med(mint, "rps") / med(trivial, "rps")
    errors = int(sum(r["errors"] for r in mint + trivial))
    print(f"mint/trivial = {ratio:.2f}  p99_ms = {med(mint, 'p99'):.1f}  errors = {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
