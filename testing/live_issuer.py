"""A real issuer process on a loopback port: for end-to-end tests, benchmarks and the demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from issuer.cli import main as cli_main
from issuer.files import FILE_MODE, private_dir


def terminate(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None, grace: float) -> None:
    """SIGTERM ``proc`` if it still runs, and SIGKILL it when it has not ended within ``grace`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_dir(base: Path, issuer_id: str = "SH") -> None:
    """``suishenma-issuer init`` in ``base`` (idempotent).

    Raises:
        RuntimeError: init failed.
    """
    if cli_main(["--dir", str(base), "init", "--issuer-id", issuer_id]) != 0:
        raise RuntimeError(f"suishenma-issuer init failed in {base}")


def create_api_key(base: Path, name: str, scopes: str, rate: float | None = None) -> str:
    """Make an API key through the CLI, in a subprocess so its printed key is read like an operator would."""
    cmd = [sys.executable, "-m", "issuer", "--dir", str(base), "api-key", "create", "--name", name, "--scopes", scopes]
    if rate is not None:
        cmd += ["--rate", str(rate)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


class LiveIssuer:
    """``suishenma-issuer serve`` in a child process; ``stop``/``kill``/``start`` for fault tests."""

    def __init__(
        self, base: Path, port: int | None = None, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        """``args`` go after ``serve`` (e.g. ``("--access-log",)``)."""
        self.base = base
        self.args = args
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "var" / "serve.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> LiveIssuer:
        """Raises: RuntimeError when the server does not answer /healthz within ``timeout``."""
        private_dir(self.log.parent)
        cmd = [sys.executable, "-m", "issuer", "--dir", str(self.base), "serve", "--port", str(self.port), *self.args]
        with os.fdopen(os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE), "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"issuer exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"issuer did not start within {timeout} s; see {self.log}")

    def stop(self) -> None:
        terminate(self.proc, 10)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, as in a crash or power cut of the process."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LiveIssuer:
        return self.start() if self.proc is None else self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
