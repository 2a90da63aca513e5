"""Downloads behind a one-method interface (as TUF's fetcher), so tests plug in fakes.

The httpx implementation streams with a byte cap (an endless or oversized response is cut off at the
cap, never buffered whole), times out, and retries network failures and 5xx answers with exponential
backoff and jitter.
"""

from __future__ import annotations

import json
import random
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
    ) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)), transport=transport)
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self.deadline = deadline  # per download in total: a server dripping bytes cannot hold a sync open

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
            try:
                with self.client.stream("GET", url, headers=headers) as r:
                    if r.status_code == 304:
                        return FetchResult(304, b"", etag)
                    if r.status_code >= 500:
                        raise _Retryable(f"HTTP {r.status_code}")
                    if r.status_code != 200:
                        raise NetworkError(Reason.NETWORK, f"GET {url}: HTTP {r.status_code}")
                    declared = r.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise NetworkError(Reason.TOO_LARGE, f"GET {url}: {declared} bytes > cap {max_bytes}")
                    chunks, size = [], 0
                    give_up = time.monotonic() + self.deadline
                    for chunk in r.iter_bytes():
                        if time.monotonic() > give_up:
                            raise NetworkError(Reason.NETWORK, f"GET {url}: not done after {self.deadline:g} s")
                        size += len(chunk)
                        if size > max_bytes:
                            raise NetworkError(Reason.TOO_LARGE, f"GET {url}: more than {max_bytes} bytes")
                        chunks.append(chunk)
                    return FetchResult(200, b"".join(chunks), r.headers.get("etag"))
            except httpx.HTTPError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None

        return self._retry(f"GET {url}", once)

    def post_json(self, url: str, body: object, api_key: str) -> object:
        def once() -> FetchResult:
            try:
                r = self.client.post(url, json=body, headers={"Authorization": f"Bearer {api_key}"})
            except httpx.HTTPError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from None
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


class _Retryable(Exception):
    pass
