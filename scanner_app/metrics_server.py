"""``suishenma-scanner --metrics-port N``: the kiosk's Prometheus metrics on ``GET /metrics``.

The same families as the local verifier service (``verifier/ops_metrics.py`` renders both), so one set of
alert rules and one dashboard watch every gate. A small threaded ``http.server`` in a daemon thread serves
them, beside the frame loop and the window; it listens on loopback unless told otherwise.

The kiosk's verdicts and syncs are counted by ``Metered``, which stands in for the verifier wherever the
loop and the sync thread call it::

    metrics = KioskMetrics.start(verifier, "127.0.0.1", 9464)   # raises MetricsPortError
    scanner = Scanner(source, metrics.metered, ...)
    sync = SyncThread(metrics.metered, interval)
    ...
    metrics.close()
"""

from __future__ import annotations

import errno
import logging
import socket
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from suishenma.cliutil import CliError
from verifier import Verifier
from verifier.ops_metrics import CONTENT_TYPE, SyncFailures, VerdictCounters, render

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"


class MetricsPortError(CliError):
    """The metrics address cannot be listened on (taken, not ours, not allowed): exit code 2."""


class Metered:
    """The verifier as the loop and the sync thread see it, with every verdict and sync counted."""

    def __init__(self, verifier: Verifier, verdicts: VerdictCounters, sync_failures: SyncFailures) -> None:
        self.verifier = verifier
        self.verdicts = verdicts
        self.sync_failures = sync_failures

    def verify(self, text: str, now: float | None = None) -> Any:
        verdict = self.verifier.verify(text, now=now)
        self.verdicts.verdict(verdict.decision, verdict.reason, verdict.elapsed_ms / 1000)
        return verdict

    def sync(self, now: float | None = None) -> Any:
        """The verifier's sync, its problems counted; a sync that raised counts as a failure too, or a kiosk
        whose syncs keep crashing would never raise the SyncFailing alert.

        Raises:
            Exception: whatever ``Verifier.sync`` raised (the sync thread logs it and tries again later).
        """
        try:
            report = self.verifier.sync(now=now)
        except Exception:
            self.sync_failures.crashed()
            raise
        self.sync_failures.count(report)
        return report

    def health(self, now: float | None = None) -> Any:
        return self.verifier.health(now=now)


class KioskMetrics:
    """The counters, the verifier they describe, and the HTTP server that serves them."""

    def __init__(self, verifier: Verifier, server: ThreadingHTTPServer) -> None:
        self.verifier = verifier
        self.verdicts = VerdictCounters()
        self.sync_failures = SyncFailures()
        self.metered = Metered(verifier, self.verdicts, self.sync_failures)
        self.server = server
        self._thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)

    @classmethod
    def start(cls, verifier: Verifier, host: str, port: int) -> KioskMetrics:
        """Listen on ``host:port`` and serve ``GET /metrics`` from a daemon thread.

        Raises:
            MetricsPortError: the port is in use, or the address cannot be listened on.
        """
        if not 0 <= port <= 65535:
            raise MetricsPortError(
                f"指标端口 {port} 无效：应在 1 到 65535 之间", f"the metrics port {port} is invalid: use 1 to 65535"
            )
        try:
            server = (_Server6 if ":" in host else ThreadingHTTPServer)((host.strip("[]"), port), _Handler)
        except OSError as exc:
            raise _port_error(host, port, exc) from None
        server.daemon_threads = True  # a scrape in progress never holds the kiosk open at exit
        metrics = cls(verifier, server)
        server.metrics = metrics  # type: ignore[attr-defined]  # what the handler reads
        metrics._thread.start()
        log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
        return metrics

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def render(self) -> str:
        """The body of ``GET /metrics``. Raises: sqlite3.Error when the state cannot be read."""
        return render(self.verifier, self.verdicts, self.sync_failures)

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6  # --metrics-host ::1


class _Handler(BaseHTTPRequestHandler):
    server_version = "suishenma-scanner"

    def do_GET(self) -> None:
        metrics: KioskMetrics = self.server.metrics  # type: ignore[attr-defined]
        if self.path.split("?", 1)[0] != "/metrics":
            self._reply(404, "text/plain; charset=utf-8", "not found: try /metrics\n")
            return
        try:
            body = metrics.render()
        except sqlite3.Error:
            log.exception("metrics could not be read from the verifier state")
            self._reply(503, "text/plain; charset=utf-8", "verifier state unreadable\n")
            return
        self._reply(200, CONTENT_TYPE, body)

    def _reply(self, status: int, content_type: str, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)  # a scrape every few seconds must not flood the journal


def _port_error(host: str, port: int, exc: OSError) -> MetricsPortError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return MetricsPortError(
            f"指标端口 {where} 已被占用：请用 --metrics-port 换一个端口，或先停止占用它的程序",
            f"the metrics port {where} is in use: choose another with --metrics-port, or stop what holds it",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return MetricsPortError(
            f"没有权限在 {where} 上监听指标：请用 1024 以上的端口",
            f"not allowed to listen for metrics on {where}: use a port above 1024",
        )
    why = exc.strerror or str(exc)
    return MetricsPortError(
        f"无法在 {where} 上提供指标（{why}）：请检查 --metrics-host 和 --metrics-port",
        f"cannot serve metrics on {where} ({why}): check --metrics-host and --metrics-port",
    )
