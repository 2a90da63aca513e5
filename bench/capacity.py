"""Issuer capacity per core, for docs/capacity.md: the service's own work (no HTTP), on SQLite or PostgreSQL.

Measures, on one core of this machine: dynamic codes minted per second, device credentials issued per
second, status changes applied per second through the batch path, the status list of 60 M entries
(1 % revoked) built and signed from the database, and published lists served over HTTP (full body and
304 revalidations, one worker, wrk).

Then the audited writes of a city (``--audited`` runs only this part): phone batches from 32 concurrent
writers in two worker processes (16 threads each) on one database, on PostgreSQL and on SQLite; each
request's latency is timed from the call until its batch is durable.

Run: .venv/bin/python bench/capacity.py [--postgres] [--audited]   (a few minutes)
Last line: ``mint/s = N  device/s = N  status/s = N  list60M_s = N  audited_pg/s = N  audited_sqlite/s = N
p99_ms = X`` (the audited rates count credentials, K to a request; p99 is the worse backend's).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _audited  # noqa: E402
from _load import run_wrk  # noqa: E402

from issuer import IssuerService, Settings  # noqa: E402
from issuer.opening import open_storage  # noqa: E402
from issuer.storage import StatusChange  # noqa: E402
from suishenma import DeviceKey, EntryStatus, SigningKey, StatusList  # noqa: E402
from testing.live_issuer import LiveIssuer, init_dir  # noqa: E402

PEOPLE = 2_000


def _enrolled_issuer(base: Path) -> tuple[Settings, IssuerService, int, list[str]]:
    """An issuer folder made in ``base`` (on the database SUISHENMA_ISSUER_DATABASE_URL names, else SQLite),
    its service, the time, and PEOPLE people enrolled."""
    with contextlib.redirect_stdout(io.StringIO()):
        init_dir(base)
    settings = Settings(base_dir=base, max_devices=20)
    service = IssuerService(settings, open_storage(settings))
    now = int(time.time())
    return settings, service, now, [service.enrol("张小三", f"310101{i:08d}1234", now, "bench") for i in range(PEOPLE)]


def rate(fn: object, n: int) -> float:
    """Operations per second: the median of three runs of ``n``."""
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            fn(i)  # type: ignore[operator]
        runs.append(n / (time.perf_counter() - start))
    return statistics.median(runs)


def write_status_entries(settings: Settings, rows: Sequence[tuple[object, ...]]) -> None:
    """Status-list entries (index, subject, kid, issued, expires, state) written straight into the database, on
    a connection of the bench's own: no issuer operation makes entries scattered up to index 60 M, and the
    lists are marked as having changes to publish."""
    insert = "INSERT INTO offline_codes (idx, subject, kid, issued_at, expires_at, state) VALUES (?,?,?,?,?,?)"
    changed = "UPDATE lists SET dirty = dirty + 1 WHERE name LIKE 'status:%'"
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as pg, pg.cursor() as cur:  # commits when the block ends
            cur.executemany(insert.replace("?", "%s"), rows)
            cur.execute(changed)
        return
    conn = sqlite3.connect(settings.db_path)
    try:
        with conn:  # commits when the block ends
            conn.executemany(insert, rows)
            conn.execute(changed)
    finally:
        conn.close()


def list_of(service: IssuerService, subject: str, entries: int, revoked: float) -> float:
    """Seconds to build and sign the status list from the database, ``entries`` long, ``revoked`` of it set."""
    store = service.storage
    now = int(time.time())
    step = int(1 / revoked)
    # The publisher reads only the revoked or suspended entries and the highest index: those rows suffice
    # (the valid ones between them change nothing it reads).
    base = store.status_snapshot("status:SH").max_index  # after the devices' own entries
    revoked_at = random.Random(7).sample(range(base + 1, entries), (entries - base) // step)  # spread as in life
    rows = [(i, subject, "bench", now, now + 86400, 1) for i in sorted(revoked_at)]
    rows.append((entries, subject, "bench", now, now + 86400, 0))
    write_status_entries(service.settings, rows)
    start = time.perf_counter()
    lst = service.publisher.status_list(now + 1)
    seconds = time.perf_counter() - start
    print(f"status list {lst.size:,} entries, {revoked:.0%} revoked: {len(lst.body) / 1e6:.2f} MB, {seconds:.1f} s")
    return seconds


def list_sizes(phones: int, batch: int, revoked: float) -> tuple[int, int, int, int]:
    """The compressed status list (2 bits, the issuer's coding) for ``phones`` at ``revoked`` of people
    revoked: one index per phone (the previous forms) against ``batch`` live credentials per phone at
    random indices (the current forms; the space doubles when it is three quarters full, as the draw does).
    Returns (entries before, bytes before, entries now, bytes now)."""
    rng = np.random.default_rng(11)
    out = []
    for per_phone in (1, batch):
        live = phones * per_phone
        size = 1 << 20
        while size * 3 // 4 < live:
            size *= 2
        lst = StatusList(size, bits=2)
        people = int(phones * revoked)
        if per_phone == 1:  # indices handed out in order
            chosen = rng.choice(live, people, replace=False)
        else:  # each revoked person's live credentials, anywhere in the space
            chosen = rng.choice(size, people * per_phone, replace=False)
        lst.set_many((int(i) for i in chosen), EntryStatus.INVALID)
        out += [size, len(lst.compress())]
    return out[0], out[1], out[2], out[3]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--postgres", action="store_true", help="start a throw-away PostgreSQL server and run on it")
    ap.add_argument("--entries", type=int, default=60_000_000)
    ap.add_argument("--list-sizes", action="store_true", help="only the status-list sizes for 15 M phones")
    ap.add_argument("--audited", action="store_true", help="only the audited writes, concurrent, on both backends")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each concurrent run")
    ap.add_argument("--writers", type=int, default=16, help="writer threads in each of the two processes")
    args = ap.parse_args()
    if args.audited:
        audited = audited_rates(args.seconds, args.writers)
        print(audited_line(audited))
        return 0
    if args.list_sizes:
        k = Settings().device_batch
        before_n, before, now_n, now = list_sizes(15_000_000, k, 0.01)
        print(f"15 M phones, 1 % of people revoked: one index per phone {before_n:,} entries, {before / 1e6:.2f} MB;")
        print(f"  K = {k} credentials per phone at random indices {now_n:,} entries, {now / 1e6:.2f} MB")
        return 0
    pg = None
    if args.postgres:
        from tests.pg_server import PgServer

        pg = PgServer()
        pg.start()
        os.environ["SUISHENMA_ISSUER_DATABASE_URL"] = pg.create_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            settings, service, now, subjects = _enrolled_issuer(base)
            mint_rate = rate(lambda i: service.mint_dynamic(subjects[i % PEOPLE], "venue", now, "bench"), 2000)
            phones = [DeviceKey.of(SigningKey.generate()).to_jwk() for _ in range(PEOPLE)]
            k = settings.device_batch
            slot_keys = [[DeviceKey.of(SigningKey.generate()).to_jwk() for _ in range(k)] for _ in range(PEOPLE)]
            batch_rate = rate(
                lambda i: service.issue_device_batch(
                    subjects[i % PEOPLE], phones[i % PEOPLE], slot_keys[i % PEOPLE], now, "bench"
                ),
                300,
            )
            device_rate = batch_rate * k
            batch = [StatusChange(("yellow", "red")[i % 2], "bench", subject=s) for i, s in enumerate(subjects)]
            start = time.perf_counter()
            for _ in range(5):
                service.set_statuses(batch, now, "bench")
            status_rate = 5 * len(batch) / (time.perf_counter() - start)
            list_s = list_of(service, subjects[0], args.entries, 0.01)
            service.storage.close()
            serve = serve_rates(base)
    finally:
        if pg is not None:
            pg.close()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"backend {backend}, one core of this machine")
    print(f"  dynamic codes minted     {mint_rate:8.0f}/s")
    print(f"  phone batches (K = {k})    {batch_rate:8.0f}/s ({device_rate:.0f} credentials/s)")
    print(f"  status changes (batches) {status_rate:8.0f}/s")
    for name, value in serve.items():
        print(f"  {name:<24} {value:8.0f}/s")
    rates = f"mint/s = {mint_rate:.0f}  device/s = {device_rate:.0f}  batch/s = {batch_rate:.0f}"
    rates += f"  status/s = {status_rate:.0f}"
    audited = audited_rates(args.seconds, args.writers)
    print(f"{rates}  list60M_s = {list_s:.1f}  {audited_line(audited)}")
    return 0


def audited_rates(seconds: float, writers: int = 16) -> dict[str, tuple[_audited.Audited, float]]:
    """Per backend, on a fresh issuer: status changes applied in batches of ``PEOPLE`` (one writer; each person
    has a phone with a batch of live credentials, which the first change revokes), then phone batches from 32
    concurrent writers in two processes (``writers`` threads each)."""
    from tests.pg_server import PgServer

    out: dict[str, tuple[_audited.Audited, float]] = {}
    pg = PgServer()
    pg.start()
    try:
        for backend in ("PostgreSQL", "SQLite"):
            url = pg.create_database() if backend == "PostgreSQL" else ""
            os.environ["SUISHENMA_ISSUER_DATABASE_URL"] = url
            with tempfile.TemporaryDirectory() as tmp:
                base = Path(tmp)
                settings, service, now, subjects = _enrolled_issuer(base)
                # each person a phone with a batch of live credentials, as the changes below revoke
                k = settings.device_batch
                for subject in subjects:
                    phone = DeviceKey.of(SigningKey.generate()).to_jwk()
                    slot_keys = [DeviceKey.of(SigningKey.generate()).to_jwk() for _ in range(k)]
                    service.issue_device_batch(subject, phone, slot_keys, now, "bench")
                batch = [StatusChange(("yellow", "red")[i % 2], "bench", subject=s) for i, s in enumerate(subjects)]
                start = time.perf_counter()
                for _ in range(5):
                    service.set_statuses(batch, now, "bench")
                status_rate = 5 * len(batch) / (time.perf_counter() - start)
                service.storage.close()
                run = _audited.run(base, subjects, threads=writers, seconds=seconds)
            out[backend] = (run, status_rate)
            print(
                f"audited, {backend}, {2 * writers} writers in 2 processes: {run.batches_per_s:.0f} batches/s"
                f" ({run.credentials_per_s:.0f} credentials/s), p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms,"
                f" {run.group:.1f} writes a commit, {run.errors} errors; status changes in batches {status_rate:.0f}/s"
            )
    finally:
        os.environ.pop("SUISHENMA_ISSUER_DATABASE_URL", None)
        pg.close()
    return out


def audited_line(audited: dict[str, tuple[_audited.Audited, float]]) -> str:
    pg, lite = audited["PostgreSQL"][0], audited["SQLite"][0]
    return (
        f"audited_pg/s = {pg.credentials_per_s:.0f}  audited_sqlite/s = {lite.credentials_per_s:.0f}"
        f"  p99_ms = {max(pg.p99_ms, lite.p99_ms):.1f}"
    )


def serve_rates(base: Path) -> dict[str, float]:
    """The status list over HTTP from one worker: whole bodies, and 304 answers to caches revalidating."""
    if shutil.which("wrk") is None:
        return {}
    script = base / "etag.lua"
    with LiveIssuer(base) as server:
        url = server.url + "/v1/status-lists/SH"
        import urllib.request

        with urllib.request.urlopen(url) as r:
            etag = r.headers["ETag"]
        script.write_text(f"wrk.headers['If-None-Match'] = '{etag}'\n")
        full = run_wrk(url, 4, 8, None)
        revalidated = run_wrk(url, 4, 16, script)
    return {"status list served (body)": full["rps"], "status list 304": revalidated["rps"]}


if __name__ == "__main__":
    sys.exit(main())
