"""An issuer simulator: a real HTTP server on 127.0.0.1 publishing list versions made with the core.

Tests script it to misbehave: serve an old version, an expired list, a list signed by the wrong key,
tampered bytes, endless data, errors, or nothing at all.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from suishenma import (
    Claims,
    DeviceKey,
    IssuerEntry,
    SigningKey,
    Status,
    StatusList,
    encode_delta,
    list_digest,
    mint,
    mint_credential,
    present,
    sign_status_list,
    sign_timestamp,
    sign_trust_list,
)
from suishenma.labels import EntryStatus
from suishenma.statusdelta import changes_between

DAY = 86400


@dataclass
class Route:
    body: bytes = b""
    # ok | error | endless | drip | slow-headers | hang-up; for scan-logs also html | ack-none | conflict-*
    mode: str = "ok"
    hits: int = 0


@dataclass
class IssuerSim:
    now: int
    root: SigningKey = field(default_factory=SigningKey.generate)
    keys: dict[str, SigningKey] = field(default_factory=lambda: {"SH": SigningKey.generate()})
    routes: dict[str, Route] = field(default_factory=dict)
    scan_batches: list[dict[str, object]] = field(default_factory=list)
    api_key: str = "kiosk-secret"
    stamps: bool = False  # trust-list entries name a timestamp URI (freshness.py)
    contents: dict[tuple[str, int], tuple[int, bytes]] = field(default_factory=dict)  # (issuer, version) -> size, bits

    def __post_init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # a short poll: shutdown() waits one poll interval, paid by every test that uses the simulator
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # publishing
    def entries(self, issuers: Iterable[str] | None = None) -> list[IssuerEntry]:
        return [
            IssuerEntry(
                self.keys[i].public(),
                i,
                self.now - DAY,
                self.now + 365 * DAY,
                status_uri=f"/status/{i}",
                timestamp_uri=f"/status/{i}/timestamp" if self.stamps else None,
            )
            for i in (issuers or self.keys)
        ]

    def publish_trust(
        self,
        version: int,
        *,
        at: int | None = None,
        ttl: int = 30 * DAY,
        issuers: Iterable[str] | None = None,
        signer: SigningKey | None = None,
    ) -> bytes:
        body = sign_trust_list(self.entries(issuers), signer or self.root, version=version, now=at or self.now, ttl=ttl)
        self.routes["/v1/trust-list"] = Route(body)
        return body

    def publish_status(
        self,
        issuer: str,
        version: int,
        *,
        revoked: Iterable[int] = (),
        suspended: Iterable[int] = (),
        at: int | None = None,
        valid_for: int = 7 * DAY,
        size: int = 1024,
        signer: SigningKey | None = None,
    ) -> bytes:
        lst = StatusList(size, bits=2)
        lst.set_many(revoked, EntryStatus.INVALID)
        lst.set_many(suspended, EntryStatus.SUSPENDED)
        body = sign_status_list(
            lst,
            signer or self.keys[issuer],
            uri=f"/status/{issuer}",
            issuer=issuer,
            version=version,
            now=at or self.now,
            valid_for=valid_for,
            ttl=300,
        )
        self.routes[f"/status/{issuer}"] = Route(body)
        self.contents[(issuer, version)] = (size, bytes(lst.data))
        return body

    def publish_timestamp(
        self,
        issuer: str,
        version: int,
        *,
        at: int | None = None,
        valid_for: int = 600,
        signer: SigningKey | None = None,
        named: str | None = None,
    ) -> bytes:
        """A timestamp naming ``version`` (published with ``publish_status``) as ``named`` (default ``issuer``)."""
        size, data = self.contents[(issuer, version)]
        body = sign_timestamp(
            signer or self.keys[issuer],
            issuer=named or issuer,
            version=version,
            size=size,
            digest=list_digest(2, size, data),
            now=at or self.now,
            valid_for=valid_for,
        )
        self.routes[f"/status/{issuer}/timestamp"] = Route(body)
        return body

    def publish_delta(self, issuer: str, first: int, last: int) -> bytes:
        (old_size, old), (size, new) = self.contents[(issuer, first)], self.contents[(issuer, last)]
        indices, values = changes_between(old, old_size, new, size, 2)
        body = encode_delta(
            issuer=issuer,
            from_version=first,
            to_version=last,
            from_digest=list_digest(2, old_size, old),
            to_digest=list_digest(2, size, new),
            bits=2,
            size=size,
            indices=indices,
            values=values,
        )
        self.routes[f"/status/{issuer}/deltas/{first}/{last}"] = Route(body)
        return body

    def publish_version(self, issuer: str, version: int, *, at: int | None = None, **changes: Iterable[int]) -> None:
        """What an issuer with timestamps does: a new list, the delta from the version before, a timestamp."""
        self.publish_status(issuer, version, at=at, **changes)  # type: ignore[arg-type]
        if (issuer, version - 1) in self.contents:
            self.publish_delta(issuer, version - 1, version)
        self.publish_timestamp(issuer, version, at=at)

    def code(
        self,
        status: Status = Status.GREEN,
        *,
        issuer: str = "SH",
        at: int | None = None,
        identity: bool = False,
        index: int | None = None,
        subject: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08",
        ttl: int = 60,
    ) -> str:
        now = at or self.now
        ident = {"name": "张小三", "id_number": "310101199001011234"} if identity else {}
        if index is None:
            claims = Claims.dynamic(subject, status, now, ttl=ttl, issuer=issuer, **ident)
        else:
            claims = Claims.offline(subject, status, now, index, issuer=issuer, **ident)
        return mint(claims, self.keys[issuer])

    def credential(
        self,
        phone: SigningKey,
        status: Status = Status.GREEN,
        *,
        issuer: str = "SH",
        at: int | None = None,
        index: int = 100,
        identity: bool = False,
        ttl: int = DAY,
        subject: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08",
    ) -> bytes:
        """A device credential for ``phone``, as the issuer would sign it."""
        ident = {"name": "张小三", "id_number": "310101199001011234"} if identity else {}
        claims = Claims.device(
            subject, status, at or self.now, index, DeviceKey.of(phone), ttl=ttl, issuer=issuer, **ident
        )
        return mint_credential(claims, self.keys[issuer])

    def device_code(self, phone: SigningKey, credential: bytes | None = None, *, at: int | None = None) -> str:
        """What the phone shows at ``at``: a presentation of its credential."""
        return present(credential or self.credential(phone), phone, now=at or self.now)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                """The Date header at the simulator's instant, not the wall clock's."""
                return email.utils.formatdate(sim.now, usegmt=True)

            def do_GET(self) -> None:
                route = sim.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route.hits += 1
                if route.mode == "error":
                    self.send_error(503)
                    return
                if route.mode == "hang-up":
                    self.connection.close()
                    return
                etag = '"' + str(hash(route.body)) + '"'
                if route.mode == "ok" and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                if route.mode == "slow-headers":  # a header line every 0.2 s, forever: the body never starts
                    try:
                        for i in range(100_000):
                            self.send_header(f"X-Slow-{i}", "1")
                            self.flush_headers()
                            time.sleep(0.2)
                    except OSError:
                        return
                if route.mode == "drip":  # a byte every 0.2 s, forever
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(b"\0")
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:
                        return
                if route.mode == "endless":  # no Content-Length, never ends
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(b"\0" * 65536)
                    except OSError:
                        return
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if self.path != "/v1/scan-logs" or self.headers.get("Authorization") != f"Bearer {sim.api_key}":
                    self.send_error(401 if self.path == "/v1/scan-logs" else 404)
                    return
                mode = sim.routes.get("/v1/scan-logs", Route()).mode
                if mode == "error":
                    self.send_error(503)
                    return
                if mode == "html":  # a captive portal or misrouted proxy answering 200
                    data = b"<html><body>Please log in</body></html>"
                elif mode == "ack-none":  # a reply that acknowledges nothing
                    data = json.dumps({"accepted": 0, "duplicates": 0}).encode()
                elif mode == "conflict-first":  # the issuer holds another record under the first seq
                    first = body["records"][0]["seq"]
                    sim.scan_batches.append(body)
                    n = len(body["records"]) - 1
                    data = json.dumps({"accepted": n, "duplicates": 0, "conflicts": [first]}).encode()
                elif mode == "conflict-stranger":  # names a seq the kiosk never sent
                    n = len(body["records"]) - 1
                    data = json.dumps({"accepted": n, "duplicates": 0, "conflicts": [10**9]}).encode()
                else:
                    sim.scan_batches.append(body)
                    data = json.dumps({"accepted": len(body["records"]), "duplicates": 0}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
