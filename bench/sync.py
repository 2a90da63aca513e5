"""Bytes a kiosk downloads to stay current: a verifier syncing from a live issuer on loopback whose status list
has 67,108,864 entries, 1 % revoked. Every HTTP body the verifier receives is counted.

- the first sync (trust list and full status list): what every new version cost before timestamps and deltas;
- a sync when nothing changed (the signed timestamp proves freshness);
- a sync after 100 status changes;
- a day of 10,000 changes spread evenly, synced every 5 minutes (288 syncs; the day runs in minutes);
- applying a 100-change delta to the held 67 M-entry list, in process (parse, apply, digest against the
  timestamp), and the verifier's resident memory with that list held.

Run: .venv/bin/python bench/sync.py [--entries N] [--day-changes N] [--syncs N]   (about ten minutes)
Last line: ``idle_sync_bytes = N  sync_100_bytes = N  day_bytes = N  apply_ms = X.X``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from issuer import IssuerService, Settings  # noqa: E402
from issuer.opening import open_storage  # noqa: E402
from suishenma import SignedStatusList, load_verification_key, parse_delta, parse_timestamp, vouched  # noqa: E402
from testing.live_issuer import LiveIssuer, create_api_key, init_dir  # noqa: E402
from verifier import HttpxFetcher, Verifier  # noqa: E402
from verifier.fetch import FetchResult  # noqa: E402

ENTRIES = 1 << 26


class CountingFetcher(HttpxFetcher):
    """Counts the bytes of every body received, by kind of URL."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: Counter[str] = Counter()
        self.last: dict[str, bytes] = {}

    def fetch(self, url: str, etag: str | None, max_bytes: int) -> FetchResult:
        result = super().fetch(url, etag, max_bytes)
        kind = "timestamp" if url.endswith("/timestamp") else "delta" if "/deltas/" in url else url.rsplit("/", 1)[-1]
        self.bytes[kind] += len(result.body)
        self.last[kind] = result.body
        return result

    def take(self) -> int:
        """Bytes received since the last call."""
        total = sum(self.bytes.values())
        self.bytes.clear()
        return total


def populate(base: Path, entries: int, revoked: float, pool: int) -> tuple[list[int], str]:
    """One enrolled person; ``revoked`` of ``entries`` indices revoked, and ``pool`` valid ones to revoke
    during the run, written straight into the database (no issuer operation scatters entries up to 67 M).
    Returns the pool's indices (shuffled) and the subject."""
    settings = Settings(base_dir=base)
    service = IssuerService(settings, open_storage(settings))
    now = int(time.time())
    subject = service.enrol("张小三", "310101199001011234", now, "bench")
    service.storage.close()
    rng = random.Random(7)
    chosen = rng.sample(range(1, entries), int(entries * revoked) + pool)
    to_revoke = chosen[:pool]
    rows = [(i, subject, "bench", now, now + 365 * 86400, 0 if n < pool else 1) for n, i in enumerate(chosen)]
    rows.append((entries - 1, subject, "bench", now, now + 365 * 86400, 0))
    conn = sqlite3.connect(settings.db_path)
    with conn:
        conn.executemany(
            "INSERT INTO offline_codes (idx, subject, kid, issued_at, expires_at, state) VALUES (?,?,?,?,?,?)",
            sorted(rows),
        )
    conn.close()
    return to_revoke, subject


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=ENTRIES)
    ap.add_argument("--day-changes", type=int, default=10_000)
    ap.add_argument("--syncs", type=int, default=288, help="syncs in the day (every 5 minutes: 288)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "issuer"
        with contextlib.redirect_stdout(io.StringIO()):
            init_dir(base)
        key = create_api_key(base, "bench", "revoke", rate=1e9)
        pool, _ = populate(base, args.entries, 0.01, 100 + args.day_changes)
        env = {"SUISHENMA_ISSUER_STATUS_LIST_CAPACITY": str(args.entries)}
        with LiveIssuer(base, env=env) as server, httpx.Client(base_url=server.url) as http:
            fetcher = CountingFetcher()
            start = time.time()
            kiosk = Verifier.init(
                Path(tmp) / "kiosk",
                server.url,
                load_verification_key(base / "keys" / "root.pub"),
                "transit",
                "gate-1",
                fetcher=fetcher,
                now=start,
            )

            def revoke(n: int) -> None:
                for _ in range(n):
                    r = http.post(f"/v1/offline-codes/{pool.pop()}/revoke", headers={"Authorization": f"Bearer {key}"})
                    r.raise_for_status()

            def sync() -> int:
                report = kiosk.sync()
                if not report.lists_ok:
                    raise RuntimeError(f"sync failed: {report.errors}")
                return fetcher.take()

            first = sync()
            full_list = len(fetcher.last["SH"])
            idle = sync()
            before = kiosk.state.status["SH"]
            revoke(100)
            sync_100 = sync()
            apply_ms = apply_cost(kiosk, before, fetcher.last["delta"], fetcher.last["timestamp"])
            del before
            day: list[int] = []
            per_sync = [args.day_changes // args.syncs + (i < args.day_changes % args.syncs) for i in range(args.syncs)]
            t0 = time.perf_counter()
            for n in per_sync:
                revoke(n)
                day.append(sync())
            day_s = time.perf_counter() - t0
            rss_mb = resident_mb()
            kiosk.close()
    day_bytes = sum(day)
    print(f"status list {args.entries:,} entries, 1 % revoked: full list {full_list:,} bytes")
    print(f"  first sync (trust list + full list)    {first:>10,} bytes   (before: every new version cost this)")
    print(f"  sync, nothing changed                  {idle:>10,} bytes   ({idle / first:.5f} of a full sync)")
    print(f"  sync after 100 changes                 {sync_100:>10,} bytes   ({sync_100 / first:.5f} of a full sync)")
    print(
        f"  day: {args.day_changes:,} changes, {args.syncs} syncs  {day_bytes:>10,} bytes   "
        f"(before: {args.syncs * first / 1e6:.0f} MB, ratio {day_bytes / (args.syncs * first):.5f});"
        f" median sync {statistics.median(day)} bytes, largest {max(day)}; ran {day_s:.0f} s"
    )
    print(f"  delta of 100 changes applied to the held list: {apply_ms:.1f} ms; verifier RSS {rss_mb:.0f} MB")
    print(f"idle_sync_bytes = {idle}  sync_100_bytes = {sync_100}  day_bytes = {day_bytes}  apply_ms = {apply_ms:.1f}")
    return 0


def apply_cost(kiosk: Verifier, before: SignedStatusList, delta: bytes, stamp: bytes) -> float:
    """Median milliseconds to parse the delta, apply it to the list held ``before`` it and check the result's
    digest against the timestamp: the work of a sync that brings 100 changes, less the network."""
    trust = kiosk.state.trust
    if trust is None:
        raise RuntimeError("the kiosk holds no trust list")
    ts = parse_timestamp(stamp, trust.keys_for("SH"), now=None)
    before.digest  # noqa: B018 - known from the sync before, as in the kiosk
    times = []
    for _ in range(7):
        start = time.perf_counter()
        vouched(parse_delta(delta).apply_to(before), ts)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def resident_mb() -> float:
    """This process's resident memory: the verifier with its lists held (and the bench's HTTP client)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
