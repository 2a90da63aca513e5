"""A real Prometheus on a loopback port, scraping given targets and evaluating given rules: for the tests of
the alert rules and the dashboard in ``ops/``.

Debian's ``prometheus`` package (``scripts/apt-packages.txt``) provides the binary and ``promtool``. It is
started directly, not as the system service: its own temporary folder (configuration, rules, storage),
``--web.enable-lifecycle`` so that ``set_targets`` can reload the configuration, scrape and evaluation every
second. When the tests run as root it runs as the ``prometheus`` user the package creates (``nobody`` where
that user is missing), as a server should.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from testing.live_issuer import free_port, terminate

Targets = Mapping[str, Sequence[str]]  # job name -> "host:port" targets


def prometheus_binary() -> Path | None:
    """The ``prometheus`` program, or None when it is not installed."""
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)
    return Path(found) if found else None


def promtool_binary() -> Path | None:
    """``promtool`` (the same Debian package), or None when it is not installed."""
    found = shutil.which("promtool")
    return Path(found) if found else None


def _run_as() -> str | None:
    """The user to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("prometheus", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return None


class LivePrometheus:
    """``start``/``stop``, ``set_targets`` (reload), and the HTTP API's ``query`` and ``alerts``."""

    def __init__(self, targets: Targets, rules: str = "", interval: str = "1s") -> None:
        """``rules``: the text of one rules file (may be empty); ``interval``: scrape and evaluation interval.

        Raises:
            FileNotFoundError: the prometheus binary is not installed.
        """
        binary = prometheus_binary()
        if binary is None:
            raise FileNotFoundError("prometheus is not installed (scripts/system-deps installs Debian's prometheus)")
        self.binary = binary
        self.interval = interval
        self.port = free_port()
        self.user = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="suishenma-prometheus-"))
        self.config = self.dir / "prometheus.yml"
        self.rules = self.dir / "rules.yml"
        self.log = self.dir / "prometheus.log"
        self.rules.write_text(rules or "groups: []\n")
        self._write_config(targets)
        (self.dir / "data").mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.dir, self.dir / "data", self.config, self.rules):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self, targets: Targets) -> None:
        # JSON is YAML: no YAML library needed. The scrape timeout may not exceed the interval.
        config = {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "rule_files": [str(self.rules)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(hosts)}]} for job, hosts in targets.items()
            ],
        }
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        tmp.chmod(0o644)
        tmp.replace(self.config)  # a reload never reads half a file

    def start(self, timeout: float = 30.0) -> LivePrometheus:
        """Raises: RuntimeError (with the end of its log) when the server exits or is not ready within
        ``timeout``; its folder is removed then."""
        cmd = [
            str(self.binary),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, user=self.user, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        what = f"was not ready within {timeout} s" if self.proc.poll() is None else f"exited ({self.proc.returncode})"
        tail = self.log.read_text(errors="replace")[-2000:]
        self.close()  # the caller holds no server to close
        raise RuntimeError(f"prometheus {what}:\n{tail}")

    def set_targets(self, targets: Targets) -> None:
        """Scrape these targets from now on (the configuration is rewritten and reloaded).

        Raises:
            RuntimeError: the server refused the new configuration.
        """
        self._write_config(targets)
        request = urllib.request.Request(self.url + "/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                r.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"prometheus refused the configuration: {exc.read().decode(errors='replace')}") from None

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """The decoded JSON answer of ``GET /api/v1/<path>`` (also when its status is 4xx: it says why).

        Raises:
            OSError: the server does not answer.
        """
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        return body

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` at the current time: ``{"status": "success", "data": ...}`` or an error."""
        return self.api("query", query=expr)

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (``state`` is ``pending`` or ``firing``), each with its labels and annotations."""
        alerts: list[dict[str, Any]] = self.api("alerts")["data"]["alerts"]
        return alerts

    def firing(self) -> set[tuple[str, str]]:
        """(alert name, instance) of every firing alert."""
        return {
            (a["labels"]["alertname"], a["labels"].get("instance", "")) for a in self.alerts() if a["state"] == "firing"
        }

    def stop(self) -> None:
        terminate(self.proc, 15)

    def close(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LivePrometheus:
        return self.start() if self.proc is None else self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
