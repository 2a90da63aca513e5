"""``/metrics`` of ``serve --workers N`` reports the sum over the workers, whichever answers: a scrape that
reached one worker's counters alone would make totals jump back and forth, which Prometheus reads as resets
and the error-ratio alert as noise. Error counters start at 0, so ``rate()`` sees the first 5xx."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from issuer import Settings, create_app
from issuer.http import worker_metrics
from issuer.http.metrics import BUCKETS, Metrics, Snapshot, merge, render
from issuer.http.worker_metrics import ServeFolder, WorkerShare, from_json, metrics_root, to_json
from issuer.signing_times import BUCKETS as SIGNING_BUCKETS
from issuer.signing_times import KindTimes, SigningTimes
from testing.live_issuer import LiveIssuer

from .test_metrics_ops import Exposition, parse

UNMATCHED_404 = ("suishenma_http_responses_total", {"endpoint": "unmatched", "code": "404"})


@pytest.fixture()
def backend() -> str:
    """These tests are about processes, not storage: the embedded default only."""
    return "sqlite"


def _wait(check: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll ``check`` until true; the bound only stops a hang (nothing here asserts on elapsed time)."""
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _req(*counts: int, total: float) -> KindTimes:
    """A request histogram: ``counts`` in its first buckets, none in the rest."""
    return KindTimes((*counts, *[0] * (len(BUCKETS) + 1 - len(counts))), total)


def _sig(*counts: int, total: float) -> KindTimes:
    return KindTimes((*counts, *[0] * (len(SIGNING_BUCKETS) + 1 - len(counts))), total)


def test_merge_adds_counters_by_series_and_histograms_bucket_by_bucket() -> None:
    a = Snapshot({("c_total", 'k="x"'): 2.0, ("d_total", ""): 1.0}, {"mint": _req(1, 2, 0, total=0.5)}, {})
    b = Snapshot(
        {("c_total", 'k="x"'): 3.0, ("c_total", 'k="y"'): 7.0},
        {"mint": _req(0, 1, 4, total=1.25)},
        {"dynamic": _sig(0, 2, total=0.5)},
    )
    live = Snapshot({("d_total", ""): 10.0}, {"other": _req(1, total=0.125)}, {"dynamic": _sig(5, total=1.0)})
    # the others' snapshots come from their files: through the file format and back
    total = merge([live, *(from_json(to_json(s)) for s in (a, b))])
    assert total.counters == {("c_total", 'k="x"'): 5.0, ("c_total", 'k="y"'): 7.0, ("d_total", ""): 11.0}
    assert total.requests == {"mint": _req(1, 3, 4, total=1.75), "other": _req(1, total=0.125)}
    assert total.signing == {"dynamic": _sig(5, 2, total=1.5)}
    with pytest.raises(ValueError, match="cannot be added"):
        merge([a, Snapshot({}, {"mint": KindTimes((1,), 0.0)}, {})])


def test_a_snapshot_file_of_another_shape_is_refused_with_its_reason() -> None:
    with pytest.raises(ValueError, match="snapshot format 2"):
        from_json(b'{"format": 2, "counters": [], "requests": {}, "signing": {}}')
    with pytest.raises(ValueError, match="mint: 2 buckets"):
        from_json(b'{"format": 1, "counters": [], "requests": {"mint": [[1, 2], 0.1]}, "signing": {}}')
    with pytest.raises(ValueError, match="not a metrics snapshot"):
        from_json(b'{"format": 1}')


def test_a_worker_reports_its_live_values_plus_the_others_latest_files_even_of_a_dead_one(tmp_path: Path) -> None:
    workers = [Metrics(SigningTimes()) for _ in range(3)]
    shares = [WorkerShare(tmp_path, m, name=f"worker-{i}.json") for i, m in enumerate(workers)]
    for i, m in enumerate(workers):
        m.observe("mint_code", 200, BUCKETS[i])
        m.inc("suishenma_codes_minted_total", 'type="dynamic"', 10**i)
    shares[1].publish()
    shares[2].publish()
    workers[2].inc("suishenma_codes_minted_total", 'type="dynamic"', 1000)  # not yet published: not seen
    text = parse(render(shares[0].merged()))
    assert text.value("suishenma_codes_minted_total", type="dynamic") == 1 + 10 + 100
    assert text.value("suishenma_http_request_seconds_count", endpoint="mint_code") == 3
    # cumulative buckets: one request at most BUCKETS[0] s, two at most BUCKETS[1], three at most BUCKETS[2]
    for i in range(3):
        assert text.value("suishenma_http_request_seconds_bucket", endpoint="mint_code", le=f"{BUCKETS[i]:g}") == i + 1
    # worker 1 dies: its file stays, and so do its counts in the sum
    (tmp_path / "worker-9.json").write_bytes(b"{")  # a damaged file is left out, not a failed scrape
    assert parse(render(shares[0].merged())).value("suishenma_codes_minted_total", type="dynamic") == 111
    assert {p.name for p in tmp_path.iterdir()} == {"worker-0.json", "worker-1.json", "worker-2.json", "worker-9.json"}
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.glob("worker-[012].json")} == {"0o600"}


def _minted(share: WorkerShare) -> float:
    return parse(render(share.merged())).value("suishenma_codes_minted_total", type="dynamic")


def test_a_worker_whose_snapshot_cannot_be_written_reports_what_its_file_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reporting live values that were never written would make the next scrape, answered by another worker
    from the older file, go down."""
    a, b = Metrics(SigningTimes()), Metrics(SigningTimes())
    share_a, share_b = WorkerShare(tmp_path, a, name="worker-a.json"), WorkerShare(tmp_path, b, name="worker-b.json")
    a.inc("suishenma_codes_minted_total", 'type="dynamic"', 5)
    assert _minted(share_a) == _minted(share_b) == 5
    blocker = tmp_path / f".worker-a.json.{os.getpid()}.tmp"
    blocker.mkdir()  # the next write fails (EISDIR), whoever runs the test, as a full disk would
    a.inc("suishenma_codes_minted_total", 'type="dynamic"', 2)
    with caplog.at_level(logging.INFO, logger=worker_metrics.__name__):
        for _ in range(3):
            assert _minted(share_a) == 5  # what worker b reads from a's file
            assert _minted(share_b) == 5
        share_a.own()  # the publishing thread fails too: still one line for the outage
        assert [r.levelname for r in caplog.records if "cannot write" in r.getMessage()] == ["ERROR"]
        blocker.rmdir()
        assert _minted(share_a) == _minted(share_b) == 7
        assert any("written again" in r.getMessage() for r in caplog.records)


def test_a_worker_that_never_could_write_reports_its_series_at_0(tmp_path: Path) -> None:
    metrics = Metrics(SigningTimes())
    metrics.inc("suishenma_codes_minted_total", 'type="dynamic"', 3)
    (tmp_path / f".worker-a.json.{os.getpid()}.tmp").mkdir()
    text = parse(render(WorkerShare(tmp_path, metrics, name="worker-a.json").merged()))
    assert text.value("suishenma_codes_minted_total", type="dynamic") == 0  # the series is there, at 0


def test_an_idle_worker_writes_its_file_again_when_it_is_gone(tmp_path: Path) -> None:
    idle, busy = Metrics(SigningTimes()), Metrics(SigningTimes())
    share_idle, share_busy = WorkerShare(tmp_path, idle, name="worker-0.json"), WorkerShare(tmp_path, busy)
    idle.inc("suishenma_codes_minted_total", 'type="dynamic"', 4)
    share_idle.own()
    assert _minted(share_busy) == 4
    (tmp_path / "worker-0.json").unlink()
    share_idle.own()  # nothing changed since its last write: it writes all the same
    assert (tmp_path / "worker-0.json").exists()
    assert _minted(share_busy) == 4


def test_a_file_that_turns_unreadable_counts_with_its_last_snapshot_read(tmp_path: Path) -> None:
    a, b = Metrics(SigningTimes()), Metrics(SigningTimes())
    share_a, share_b = WorkerShare(tmp_path, a, name="worker-a.json"), WorkerShare(tmp_path, b, name="worker-b.json")
    b.inc("suishenma_codes_minted_total", 'type="dynamic"', 6)
    share_b.own()
    assert _minted(share_a) == 6
    (tmp_path / "worker-b.json").write_bytes(b"{")
    assert _minted(share_a) == 6
    (tmp_path / "worker-b.json").unlink()
    assert _minted(share_a) == 6


def _serve_folders(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def test_each_serve_has_its_own_folder_and_removes_only_dead_serves_folders(tmp_path: Path) -> None:
    root = tmp_path / "var" / "metrics"
    first = ServeFolder.create(root)
    assert first.path.name.startswith("serve-") and oct(first.path.stat().st_mode & 0o777) == "0o700"
    crashed = ServeFolder.create(root)  # a serve killed outright: its folder stays, nobody holds its lock
    (crashed.path / "worker-1-aa.json").write_bytes(b"{}")
    os.close(crashed._fd)
    # a serve whose supervisor died while a worker still runs: the worker's hold keeps the folder
    orphaned = ServeFolder.create(root)
    worker = WorkerShare(orphaned.path, Metrics(SigningTimes()), period=3600)
    worker.start()
    os.close(orphaned._fd)
    (first.path / "worker-2-bb.json").write_bytes(b"{}")
    second = ServeFolder.create(root)  # another address, same port; or one that will fail to bind
    assert _serve_folders(root) == {first.path.name, orphaned.path.name, second.path.name}
    assert (first.path / "worker-2-bb.json").exists()  # the running serve's files are untouched
    second.close()  # a serve that stops (or could not bind) removes its own folder alone
    assert _serve_folders(root) == {first.path.name, orphaned.path.name}
    worker.stop()
    with ServeFolder.create(root) as third:
        assert _serve_folders(root) == {first.path.name, third.path.name}
    first.close()
    assert _serve_folders(root) == set()


def test_a_fresh_app_shows_every_endpoints_error_counter_at_0(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    for endpoint in ("mint_code", "healthz", "metrics", "unmatched"):
        assert f'suishenma_http_errors_total{{endpoint="{endpoint}"}} 0\n' in text
    exposition = parse(text)
    errors = {dict(labels)["endpoint"] for name, labels in exposition.samples if name == "suishenma_http_errors_total"}
    assert len(errors) < 80  # one per route: bounded, whatever paths clients ask for


def _workers(server: LiveIssuer) -> list[int]:
    assert server.proc is not None
    out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    # uvicorn's supervisor also runs a resource tracker; the workers are the ones serving the app
    return [p for p in pids if b"multiprocessing.resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


class Scrapes:
    """Scrapes on a new connection each (so any worker may answer), checking that no total ever goes down."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[str, float] = {}

    def __call__(self) -> Exposition:
        while True:
            try:  # a connection the killed worker had accepted fails: ask again, as Prometheus would next time
                r = httpx.get(self.url + "/metrics", headers={"Connection": "close"}, timeout=10)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert r.status_code == 200
        text = parse(r.text)
        totals: dict[str, float] = {}
        for (name, _), value in text.samples.items():
            if name.endswith(("_total", "_count", "_bucket")):
                totals[name] = totals.get(name, 0.0) + value
        for name, value in totals.items():
            assert value >= self.seen.get(name, 0.0), f"{name} went down: {self.seen[name]} then {value}"
        self.seen.update(totals)
        return text


def _unmatched(text: Exposition) -> float:
    name, labels = UNMATCHED_404
    return text.value(name, **labels) if (name, frozenset(labels.items())) in text.samples else 0.0


def test_every_scrape_of_two_workers_shows_the_sum_and_totals_never_go_down_even_when_a_worker_dies(
    home: Path,
) -> None:
    k = 40
    with LiveIssuer(home, args=("--workers", "2")) as server:
        for _ in range(k):  # a new connection each time, so both workers take requests
            assert httpx.get(server.url + "/no-such-page", headers={"Connection": "close"}).status_code == 404
        scrape = Scrapes(server.url)
        _wait(lambda: _unmatched(scrape()) == k, f"a scrape to show all {k} requests")
        for _ in range(30):  # settled: whichever worker answers, the sum is exactly K
            text = scrape()
            assert _unmatched(text) == k
            assert text.value("suishenma_http_request_seconds_count", endpoint="unmatched") == k
            assert text.value("suishenma_http_errors_total", endpoint="unmatched") == 0
        (folder,) = metrics_root(Settings(base_dir=home)).glob("serve-*")  # this serve's own
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
        assert len(list(folder.glob("worker-*.json"))) == 2

        before = set(_workers(server))
        assert len(before) == 2
        os.kill(sorted(before)[0], signal.SIGKILL)
        _wait(lambda: len(set(_workers(server)) - before) == 1, "uvicorn to replace the killed worker")
        # the dead worker's file stays beside its replacement's, and its counts in the sum
        _wait(lambda: len(list(folder.glob("worker-*.json"))) == 3, "the new worker's first snapshot")
        for _ in range(30):
            assert _unmatched(scrape()) == k


class OnHost(LiveIssuer):
    """A serve on another loopback address (127.0.0.0/8 is all loopback on Linux)."""

    host = "127.0.0.2"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def test_another_serve_of_the_same_folder_and_port_never_lowers_a_serves_totals(home: Path) -> None:
    """Before, the folder was the port's, emptied by every serve at start: a second serve on the same port
    (which then fails to bind) or on another address wiped the first's files, and its idle workers never wrote
    them again: the totals fell."""
    k = 20
    with LiveIssuer(home, args=("--workers", "2")) as server:
        for _ in range(k):
            assert httpx.get(server.url + "/no-such-page", headers={"Connection": "close"}).status_code == 404
        scrape = Scrapes(server.url)
        _wait(lambda: _unmatched(scrape()) == k, f"a scrape to show all {k} requests")

        cmd = [sys.executable, "-m", "issuer", "--dir", str(home), "serve", "--port", str(server.port)]
        same = subprocess.run([*cmd, "--workers", "2"], capture_output=True, text=True, timeout=60)
        assert same.returncode != 0 and "address already in use" in (same.stdout + same.stderr).lower()
        for _ in range(20):
            assert _unmatched(scrape()) == k

        with OnHost(home, port=server.port, args=("--workers", "2", "--host", OnHost.host)) as other:
            other_scrape = Scrapes(other.url)
            for _ in range(k):  # more requests to the first serve: the other one never counts them
                assert httpx.get(server.url + "/no-such-page", headers={"Connection": "close"}).status_code == 404
            _wait(lambda: _unmatched(scrape()) == 2 * k, f"a scrape to show all {2 * k} requests")
            for _ in range(10):
                assert _unmatched(other_scrape()) == 0
                assert _unmatched(scrape()) == 2 * k
        for _ in range(20):  # the other serve has stopped and removed its own folder alone
            assert _unmatched(scrape()) == 2 * k
        assert len(list(metrics_root(Settings(base_dir=home)).glob("serve-*"))) == 1
