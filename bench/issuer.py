"""Issuer throughput: the mint endpoint against a trivial endpoint on the same one-worker server, then
mint on two workers against one, on SQLite (default) or PostgreSQL (``--postgres`` starts a throw-away
server as the tests do; ``--database-url URL`` uses yours).

Load comes from a separate process on loopback: ``wrk`` when installed (Debian package), else an
async httpx generator. Rounds alternate trivial / mint and the medians are compared, because the
machine is noisy. Also reports QR renders per second (zxing-cpp path against segno alone), and with
``--import-rows N`` the time ``status import`` takes for N changes by ID number (N people enrolled first).

Last line: ``mint/trivial = X.XX  p99_ms = Y.Y  errors = N  workers2/workers1 = Z.ZZ``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
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

from issuer.qr_images import png, qr_matrix, svg  # noqa: E402
from suishenma.qr import make_qr  # noqa: E402
from testing.live_issuer import LiveIssuer, create_api_key, init_dir  # noqa: E402


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


def enrol_many(base: Path, n: int) -> list[str]:
    """``n`` people enrolled straight into storage (sealed and audited as enrolment does), a transaction per
    10 000 of them; their ID numbers."""
    from issuer import Settings
    from issuer.opening import open_storage

    store = open_storage(Settings(base_dir=base))
    ids = [f"310101{i:08d}{i % 10000:04d}"[:18] for i in range(n)]
    now = int(time.time())
    people = [(f"{i:016x}", "张小三", id_number) for i, id_number in enumerate(ids)]
    for start in range(0, n, 10_000):
        store.subject_create_many(people[start : start + 10_000], now, "bench")
    store.close()
    return ids


def import_seconds(base: Path, n: int) -> float:
    """Enrol ``n`` people, write a CSV of ``n`` changes by ID number, and time ``status import`` on it."""
    from issuer.cli import main as issuer_main

    ids = enrol_many(base, n)
    path = base / "changes.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("id_number,status,reason\n")
        for i, id_number in enumerate(ids):
            f.write(f"{id_number},{('yellow', 'red')[i % 2]},district health office\n")
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert issuer_main(["--dir", str(base), "status", "import", str(path), "--json"]) == 0
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--database-url", default="", help="PostgreSQL to run on (an empty database)")
    ap.add_argument("--postgres", action="store_true", help="start a throw-away PostgreSQL server and run on it")
    ap.add_argument("--import-rows", type=int, default=0, help="also time `status import` of this many changes")
    args = ap.parse_args()

    pg = None
    if args.postgres:
        from tests.pg_server import PgServer

        pg = PgServer()
        pg.start()
        args.database_url = pg.create_database()
    if args.database_url:
        os.environ["SUISHENMA_ISSUER_DATABASE_URL"] = args.database_url
    backend = "PostgreSQL" if args.database_url else "SQLite"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = measure(Path(tmp), args)
            imported = import_seconds(Path(tmp) / "import", args.import_rows) if args.import_rows else None
    finally:
        if pg is not None:
            pg.close()
    trivial, mint, mint2, use_wrk = results

    def med(rows: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in rows)

    print(f"backend: {backend}; load generator: {'wrk' if use_wrk else 'httpx'}, {args.connections} connections")
    print(f"{'endpoint':<18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, rows in (("trivial, 1 worker", trivial), ("mint, 1 worker", mint), ("mint, 2 workers", mint2)):
        errs = int(sum(r["errors"] for r in rows))
        print(f"{name:<18} {med(rows, 'rps'):9.0f} {med(rows, 'p50'):8.2f} {med(rows, 'p99'):8.2f} {errs:7d}")
    print("QR rendering of a dynamic code (renders/s):")
    code_text = "SM1:" + "6BFOXN*TS0BI$ZD.P9UOL97O4-2HH77HRM3DSPTLRR+%3" * 4
    for name, rate in render_rates(code_text).items():
        print(f"  {name:<30} {rate:8.0f}/s  ({1000 / rate:.2f} ms)")
    if imported is not None:
        print(f"status import: {args.import_rows:,} changes by ID number in {imported:.1f} s ({backend})")
    ratio = med(mint, "rps") / med(trivial, "rps")
    scale = med(mint2, "rps") / med(mint, "rps")
    errors = int(sum(r["errors"] for r in mint + trivial + mint2))
    p99 = med(mint, "p99")
    print(f"mint/trivial = {ratio:.2f}  p99_ms = {p99:.1f}  errors = {errors}  workers2/workers1 = {scale:.2f}")
    return 0


def measure(
    base: Path, args: argparse.Namespace
) -> tuple[list[dict[str, float]], list[dict[str, float]], list[dict[str, float]], bool]:
    """Rounds of trivial and mint on one worker, then mint on two workers (same database, same person)."""
    init_dir(base)
    key = create_api_key(base, "bench", "enrol,mint", rate=1e9)
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

    trivial, mint, mint2 = [], [], []
    with LiveIssuer(base) as server:
        subject = post_json(server.url + "/v1/subjects", key, {"name": "张小三", "id_number": "310101199001011234"})
        mint_path = f"/v1/subjects/{subject['subject']}/codes"
        load(server.url + "/healthz", False)  # warm up
        load(server.url + mint_path, True)
        for _ in range(args.rounds):
            trivial.append(load(server.url + "/healthz", False))
            mint.append(load(server.url + mint_path, True))
    with LiveIssuer(base, args=("--workers", "2")) as server:
        load(server.url + mint_path, True)  # warm up both workers
        for _ in range(args.rounds):
            mint2.append(load(server.url + mint_path, True))
    return trivial, mint, mint2, use_wrk


if __name__ == "__main__":
    sys.exit(main())
