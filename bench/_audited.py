"""Audited writes from concurrent writers: worker processes on one database, each with writer threads that
ask for phone batches (one audited write each) as fast as they are answered.

``run`` starts the workers (this file, ``worker`` mode), lets them make their keys, starts them together and
collects each request's latency (from the call until its batch is durable). Used by ``bench/capacity.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from issuer import IssuerService, Settings  # noqa: E402
from issuer.opening import open_storage  # noqa: E402
from suishenma import DeviceKey, SigningKey  # noqa: E402

PHONES_PER_WRITER = 16


@dataclass(frozen=True)
class Audited:
    batches_per_s: float
    credentials_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    group: float  # audited writes per commit, on average


def run(base: Path, subjects: list[str], workers: int = 2, threads: int = 16, seconds: float = 10.0) -> Audited:
    """Phone batches per second from ``workers`` processes of ``threads`` writers on the issuer in ``base``
    (its database named by the environment, as the issuer opens it)."""
    people = base / "bench-people.json"
    people.write_text(json.dumps(subjects))
    cmd = [sys.executable, __file__, "worker", str(base), str(people), str(workers), str(threads), str(seconds)]
    procs = [
        subprocess.Popen([*cmd, str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for i in range(workers)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 120)
        if p.returncode != 0:
            raise RuntimeError(f"writer process failed ({p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    latencies = sorted(x for r in results for x in r["lat_ms"])
    batches = sum(r["n"] / r["seconds"] for r in results)
    k = results[0]["k"]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    cpu_ms = sum(r["cpu"] for r in results) * 1000 / max(1, sum(r["n"] for r in results))
    print(f"  writer processes' CPU: {cpu_ms:.2f} ms a batch", file=sys.stderr)
    group = sum(r["members"] for r in results) / max(1, sum(r["groups"] for r in results))
    return Audited(batches, batches * k, p50, p99, sum(r["errors"] for r in results), group)


def worker(base: Path, people: Path, workers: int, threads: int, seconds: float, index: int) -> None:
    settings = Settings(base_dir=base, max_devices=20)
    service = IssuerService(settings, open_storage(settings))
    subjects: list[str] = json.loads(people.read_text())
    k = settings.device_batch
    stride = workers * threads

    def keys() -> dict[str, object]:
        return DeviceKey.of(SigningKey.generate()).to_jwk()

    phones = [
        [
            (subjects[(index * threads + t + j * stride) % len(subjects)], keys(), [keys() for _ in range(k)])
            for j in range(PHONES_PER_WRITER)
        ]
        for t in range(threads)
    ]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    print("ready", flush=True)
    sys.stdin.readline()
    end = time.perf_counter() + seconds

    def writer(t: int) -> None:
        n = 0
        while time.perf_counter() < end:
            subject, phone, slot_keys = phones[t][n % PHONES_PER_WRITER]
            n += 1
            start = time.perf_counter()
            try:
                service.issue_device_batch(subject, phone, slot_keys, int(time.time()), "bench")
            except Exception:  # counted: a refused or failed request is not a batch
                errors[t] += 1
                continue
            latencies[t].append((time.perf_counter() - start) * 1000)

    begin, cpu = time.perf_counter(), time.process_time()
    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed, cpu = time.perf_counter() - begin, time.process_time() - cpu
    groups = getattr(service.storage, "group_commit", None)  # absent before group commit: one write a commit
    service.storage.close()
    lat = [x for per in latencies for x in per]
    out = {"n": len(lat), "seconds": elapsed, "k": k, "lat_ms": lat, "errors": sum(errors), "cpu": cpu}
    counts = (
        {"groups": groups.groups, "members": groups.members} if groups else {"groups": len(lat), "members": len(lat)}
    )
    print(json.dumps(out | counts))


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    a = sys.argv[2:]
    worker(Path(a[0]), Path(a[1]), int(a[2]), int(a[3]), float(a[4]), int(a[5]))
