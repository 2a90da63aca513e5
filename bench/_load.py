"""Load generators for the HTTP benchmarks: ``wrk`` (Debian package) when installed, else async httpx in a
child process, so that the load never shares the server's process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def run_wrk(
    url: str, seconds: float, connections: int, script: Path | None, prefix: tuple[str, ...] = ()
) -> dict[str, float]:
    """``prefix`` goes before the command (e.g. ``taskset -c 1``)."""
    cmd = [*prefix, "wrk", *(["-s", str(script)] if script else []), "-t1", f"-c{connections}"]
    cmd += [f"-d{seconds:g}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": ms("50"), "p99": ms("99"), "errors": errors}


def run_httpx(url: str, seconds: float, connections: int, method: str, body: bytes, key: str) -> dict[str, float]:
    """Fallback load generator in a child process (so it does not share the server's core)."""
    code = f"""
import asyncio, httpx, time, json, sys
async def main():
    lat, errors = [], 0
    end = time.perf_counter() + {seconds}
    headers = {{"Authorization": "Bearer {key}", "Content-Type": "application/json"}}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections={connections})) as c:
        async def worker():
            nonlocal errors
            while time.perf_counter() < end:
                t = time.perf_counter()
                try:
                    r = await c.request("{method}", "{url}", content={body!r}, headers=headers)
                    errors += r.status_code >= 400
                except httpx.HTTPError:
                    errors += 1
                lat.append(time.perf_counter() - t)
        await asyncio.gather(*(worker() for _ in range({connections})))
    lat.sort()
    print(json.dumps({{"rps": len(lat) / {seconds}, "p50": lat[len(lat) // 2] * 1000,
                      "p99": lat[int(len(lat) * 0.99)] * 1000, "errors": errors}}))
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out)
    return result
