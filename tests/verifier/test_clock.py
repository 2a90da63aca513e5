"""Clock checks: the skew learnt at sync (signed list times, the HTTP Date header), and CLOCK_WRONG verdicts."""

from __future__ import annotations

from pathlib import Path

from suishenma import IssuerEntry, SigningKey, StatusList, sign_status_list, sign_trust_list
from verifier import Decision, FetchResult, VerdictReason, Verifier
from verifier.clock import HTTP_DATE, SIGNED, ClockSample, clock_wrong, estimate
from verifier.fetch import http_date

NOW = 1_780_000_000
DAY = 86400


def test_estimate_prefers_signed_evidence_of_a_clock_behind() -> None:
    assert estimate([]) is None
    assert estimate([ClockSample(NOW, None, NOW - 3600)]) is None  # an old list says nothing
    dated = estimate([ClockSample(NOW + 120.5, NOW, None), ClockSample(NOW + 121.5, NOW + 1, None)])
    assert dated is not None and (dated.skew_s, dated.source) == (120.0, HTTP_DATE)
    # the Date header says all is well, but a list signed 300 s in this clock's future says otherwise
    signed = estimate([ClockSample(NOW, NOW, None), ClockSample(NOW, None, NOW + 300)])
    assert signed is not None and (signed.skew_s, signed.source) == (-300.0, SIGNED)


def test_clock_wrong_past_the_allowance_or_before_a_signed_time() -> None:
    ok = estimate([ClockSample(NOW + 3.5, NOW, None)])
    assert not clock_wrong(ok, NOW, NOW, 10)
    fast = estimate([ClockSample(NOW + 30.5, NOW, None)])
    assert clock_wrong(fast, None, NOW, 10)
    assert clock_wrong(None, NOW, NOW - 11, 10) and not clock_wrong(None, NOW, NOW - 10, 10)


def test_http_date_header() -> None:
    assert http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert http_date("yesterday") is None and http_date(None) is None and http_date("x" * 100) is None


class DatedFetcher:
    """Serves fixed lists, with a Date header ``offset`` seconds from the local stamp."""

    def __init__(self, bodies: dict[str, bytes], offset: float) -> None:
        self.bodies, self.offset = bodies, offset

    def fetch(self, url: str, etag: str | None, max_bytes: int) -> FetchResult:
        body = next(b for path, b in self.bodies.items() if url.endswith(path))
        return FetchResult(200, body, None, server_date=NOW - self.offset, received_at=NOW)


def _kiosk(tmp_path: Path, offset: float, scenario: str = "venue", lists_at: int = NOW) -> tuple[Verifier, SigningKey]:
    root, issuer = SigningKey.generate(), SigningKey.generate()
    entry = IssuerEntry(issuer.public(), "SH", NOW - DAY, NOW + DAY, status_uri="/status/SH")
    bodies = {
        "/v1/trust-list": sign_trust_list([entry], root, version=1, now=lists_at, ttl=DAY),
        "/status/SH": sign_status_list(
            StatusList(64, 2), issuer, uri="/status/SH", issuer="SH", version=1, now=lists_at, valid_for=DAY, ttl=300
        ),
    }
    fetcher = DatedFetcher(bodies, offset)
    v = Verifier.init(tmp_path / "k", "http://127.0.0.1", root.public(), scenario, fetcher=fetcher, now=NOW)
    return v, issuer


def test_kiosk_clock_ahead_of_the_issuers_is_reported_and_refuses_codes(tmp_path: Path) -> None:
    from suishenma import Claims, Status, mint

    v, issuer = _kiosk(tmp_path, offset=90.5)  # this clock is 90 s ahead (venue allows 10)
    report = v.sync(now=NOW)
    assert report.clock is not None and report.clock.skew_s == 90.0
    h = v.health(now=NOW)
    assert h.clock_wrong and h.clock_skew_s == 90.0 and h.clock_source == "http-date"
    code = mint(Claims.dynamic(b"\x01" * 8, Status.GREEN, NOW - 30), issuer)
    verdict = v.verify(code, now=NOW)
    assert verdict.decision is Decision.DENY and verdict.reason is VerdictReason.CLOCK_WRONG
    assert "时钟错误" in verdict.message_zh and "CLOCK WRONG" in verdict.message_en
    v.close()
    reopened = Verifier.open(tmp_path / "k", now=NOW)  # the reading survives a restart
    assert reopened.health(now=NOW).clock_wrong
    reopened.close()


def test_hospital_refers_rather_than_refuses_on_a_wrong_clock(tmp_path: Path) -> None:
    v, _ = _kiosk(tmp_path, offset=-600.5, scenario="hospital")  # 10 minutes behind
    v.sync(now=NOW)
    verdict = v.verify("SM1:anything", now=NOW)
    assert verdict.decision is Decision.REFER and verdict.reason is VerdictReason.CLOCK_WRONG
    v.close()


def test_clock_set_back_before_a_held_signed_list_is_wrong(tmp_path: Path) -> None:
    v, _ = _kiosk(tmp_path, offset=0.5)
    assert v.sync(now=NOW).clock is not None
    assert not v.health(now=NOW).clock_wrong
    # after a reboot the real-time clock reads an hour before lists it already verified
    assert v.health(now=NOW - 3600).clock_wrong
    assert v.verify("SM1:x", now=NOW - 3600).reason is VerdictReason.CLOCK_WRONG
    v.close()
