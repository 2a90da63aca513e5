"""Downloads behind a one-method interface (as TUF's fetcher), so tests plug in fakes.

The httpx implementation streams with a byte cap (an endless or oversized response is cut off at the
cap, never buffered whole), times out, and retries network failures and 5xx answers with exponential
backoff and jitter. Each request also has a deadline over everything, from connecting through the
headers to the last body byte: httpx's timeouts apply to each read, so a server that drips a header
line or a byte every few seconds would otherwise hold a sync (and its lock) open without end.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from suishenma import NetworkError, Reason


@dataclass(frozen=True)
class FetchResult:
    status: int  # 200, or 304 when the held ETag is still current
    body: bytes
    etag: str | None
    server_date: float | None = None  # the answer's HTTP Date header (RFC 9110 §6.6.1), POSIX seconds
    received_at: float | None = None  # this machine's wall clock when the answer's headers arrived


class Fetcher(Protocol):
    def fetch(self, url: str, etag: str | None, max_bytes: int) -> FetchResult:
        """Raises: NetworkError (NETWORK or TOO_LARGE)."""
        ...


@runtime_checkable
class Poster(Protocol):
    def post_json(self, url: str, body: object, api_key: str) -> object:
        """Raises: NetworkError."""
        ...


class HttpxFetcher:
    """Fetcher and Poster over httpx."""

    def __init__(
        self,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        deadline: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # No keep-alive: every request opens its own connection, whose socket the deadline can shut
        # (syncs run minutes apart, so there is nothing to gain from reuse).
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)),
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self.deadline = deadline  # per request, connecting, headers and body together
        self.clock = clock  # stamps each answer, for the clock check against the Date header

    def close(self) -> None:
        self.client.close()

    def _retry(self, what: str, call: Callable[[], FetchResult]) -> FetchResult:
        last: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                self.sleep(delay + random.uniform(0, delay))  # jitter: kiosks must not retry in lockstep
            try:
                return call()
            except _Retryable as exc:
                last = exc
        raise NetworkError(Reason.NETWORK, f"{what}: {last}")

    def fetch(self, url: str, etag: str | None, max_bytes: int) -> FetchResult:
        headers = {"If-None-Match": etag} if etag else {}

        def once() -> FetchResult:
            with _Deadline(self.deadline, f"GET {url}") as deadline:
                return get(deadline)

        def get(deadline: _Deadline) -> FetchResult:
            try:
                with self.client.stream("GET", url, headers=headers, extensions=deadline.extensions) as r:
                    received, date = self.clock(), http_date(r.headers.get("date"))
                    if r.status_code == 304:
                        return FetchResult(304, b"", etag, date, received)
                    if r.status_code >= 500:
                        raise _Retryable(f"HTTP {r.status_code}")
                    if r.status_code != 200:
                        raise NetworkError(Reason.NETWORK, f"GET {url}: HTTP {r.status_code}")
                    declared = r.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise NetworkError(Reason.TOO_LARGE, f"GET {url}: {declared} bytes > cap {max_bytes}")
                    chunks, size = [], 0
                    for chunk in r.iter_bytes():
                        deadline.check()
                        size += len(chunk)
                        if size > max_bytes:
                            raise NetworkError(Reason.TOO_LARGE, f"GET {url}: more than {max_bytes} bytes")
                        chunks.append(chunk)
                    deadline.check()  # a shut socket reads as the end of a body without Content-Length
                    return FetchResult(200, b"".join(chunks), r.headers.get("etag"), date, received)
            except httpx.HTTPError as exc:
                deadline.check()
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None

        return self._retry(f"GET {url}", once)

    def post_json(self, url: str, body: object, api_key: str) -> object:
        def once() -> FetchResult:
            with _Deadline(self.deadline, f"POST {url}") as deadline:
                try:
                    r = self.client.post(
                        url, json=body, headers={"Authorization": f"Bearer {api_key}"}, extensions=deadline.extensions
                    )
                except httpx.HTTPError as exc:
                    deadline.check()
                    raise _Retryable(f"{type(exc).__name__}: {exc}") from None
                deadline.check()
            if r.status_code >= 500 or r.status_code == 429:
                raise _Retryable(f"HTTP {r.status_code}")
            if r.status_code != 200:
                raise NetworkError(Reason.NETWORK, f"POST {url}: HTTP {r.status_code} {r.text[:200]}")
            return FetchResult(200, r.content, None)

        reply = self._retry(f"POST {url}", once).body
        try:
            return json.loads(reply)
        except (ValueError, UnicodeDecodeError):  # e.g. a captive portal's HTML page
            raise NetworkError(Reason.NETWORK, f"POST {url}: the reply is not JSON: {reply[:80]!r}") from None


def http_date(value: str | None) -> float | None:
    """POSIX seconds of an HTTP Date header (IMF-fixdate, RFC 9110 §5.6.7); None when absent or unreadable."""
    if not value or len(value) > 64:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class _Retryable(Exception):
    pass


class _Deadline:
    """Shuts a request's sockets down when its time is up, wherever the request is blocked.

    httpcore reports each connection it opens through the request's ``trace`` extension; a timer
    calls ``shutdown`` on those sockets at the deadline, which wakes a read blocked in another
    thread (closing would not), and ``check`` then turns the resulting read error into a clear one.
    """

    _OPENED = ("connection.connect_tcp.complete", "connection.start_tls.complete")

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self.extensions = {"trace": self._trace}

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def check(self) -> None:
        """Raises: NetworkError (NETWORK) once the deadline has passed."""
        if self.expired:
            raise NetworkError(Reason.NETWORK, f"{self.what}: not done after {self.seconds:g} s")

    def _trace(self, event: str, info: dict[str, object]) -> None:
        if event not in self._OPENED:
            return
        stream = info.get("return_value")
        sock = getattr(stream, "get_extra_info", lambda _: None)("socket")
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                if self.expired:
                    _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
