"""A reverse proxy on a loopback port in front of a live issuer: for tests of what a verifier does when the path
to its issuer misbehaves, without touching the issuer or the verifier.

Everything is forwarded as it is, except what the test asks for:

- ``date_offset_s``: the ``Date`` header of every answer is the issuer's own, moved by this many seconds.
  A verifier compares its clock with that header when it syncs (``verifier.clock``), so an offset of +60
  makes a correct local clock read as 60 s behind the issuers', as a clock really 60 s slow would.
- ``refuse``: requests whose (method, path) is in this set are answered 503 by the proxy, never reaching
  the issuer, as an overloaded or half-broken front end would (e.g. ``("POST", "/v1/scan-logs")``).
- ``stop``: the port is closed; connections are refused, as for an issuer that is down or unreachable.

Both attributes may be changed while the proxy runs; each request reads them once. ``requests`` counts the
requests forwarded or refused, by (method, path), so that a test can wait for the next sync to pass.
"""

from __future__ import annotations

import email.utils
import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from testing.live_issuer import free_port

# RFC 9110 §7.6.1: hop-by-hop fields are the proxy's own business, never forwarded.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "proxy-connection"}
)
UPSTREAM_TIMEOUT_S = 30.0


class SkewProxy:
    """``start``/``stop`` (a context manager too); ``url`` is the base URL to give a verifier."""

    def __init__(self, upstream: str, port: int | None = None) -> None:
        """``upstream``: the issuer's base URL (``http://host:port``, plain HTTP).

        Raises:
            ValueError: ``upstream`` is not a plain-HTTP URL with a host.
        """
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host[:port], not {upstream!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.port = port or free_port()
        self.date_offset_s = 0.0
        self.refuse: set[tuple[str, str]] = set()
        self.requests: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, method: str, path: str) -> int:
        """Requests seen so far for (method, path), answered by the issuer or refused."""
        with self._lock:
            return self.requests[(method, path)]

    def start(self) -> SkewProxy:
        """Listen on 127.0.0.1 (again, after ``stop``, on the same port).

        Raises:
            OSError: the port cannot be bound.
        """
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"skew-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: new connections are refused until ``start``."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _seen(self, method: str, path: str) -> None:
        with self._lock:
            self.requests[(method, path)] += 1

    def __enter__(self) -> SkewProxy:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _handler(proxy: SkewProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so a stopped proxy has no kept-alive connection left to serve.
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self._forward()

        def do_HEAD(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def do_PUT(self) -> None:
            self._forward()

        def do_DELETE(self) -> None:
            self._forward()

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""  # read even when refusing: no broken pipe
            path_only = urlsplit(self.path).path
            proxy._seen(self.command, path_only)
            offset = proxy.date_offset_s
            if (self.command, path_only) in proxy.refuse:
                self._answer(503, [("Content-Type", "text/plain"), ("Retry-After", "1")], b"unavailable\n", offset)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            headers["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
            upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=UPSTREAM_TIMEOUT_S)
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                r = upstream.getresponse()
                answer = r.read()
                kept = [(k, v) for k, v in r.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
                status = r.status
            except (OSError, http.client.HTTPException) as exc:
                self._answer(502, [("Content-Type", "text/plain")], f"upstream: {exc}\n".encode(), offset)
                return
            finally:
                upstream.close()
            self._answer(status, kept, answer, offset)

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes, offset: float) -> None:
            """The answer with its Date moved by ``offset`` (the proxy's own clock when upstream gave none)."""
            date = next((v for k, v in headers if k.lower() == "date"), None)
            try:
                at = email.utils.parsedate_to_datetime(date).timestamp() if date else None
            except (TypeError, ValueError):
                at = None
            moved = email.utils.formatdate((at if at is not None else time.time()) + offset, usegmt=True)
            self.send_response_only(status)  # send_response would add a Date of its own
            for k, v in headers:
                if k.lower() != "date":
                    self.send_header(k, v)
            self.send_header("Date", moved)
            bodiless = status in (204, 304) or status < 200 or self.command == "HEAD"
            if not bodiless:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not bodiless:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the issuer logs its own requests

    return Handler
