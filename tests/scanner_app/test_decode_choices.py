"""What the decoder hands the verifier, whatever the frame holds: several codes, a huge photograph, control
characters, binary content, misreads, a code flickering in and out of focus, a retry budget."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import segno

from bench.scanner import ListFetcher
from scanner_app import Decoder, Scanner
from scanner_app.decode import _choose, _Read, _Views
from scanner_app.sources import EndOfStream
from suishenma import (
    Claims,
    IssuerEntry,
    SigningKey,
    Status,
    StatusList,
    mint,
    sign_status_list,
    sign_trust_list,
)
from suishenma._base45 import ALPHABET, b45decode, b45encode
from testing import synthetic_frames as synthetic
from tests.conftest import NOW
from verifier import Verifier

from .fakes import CountingVerifier

DAY = 86400
A, B = "SM1:" + "6BFOXN*TS0BI$ZD" * 6, "SM1:" + "P9UOL97O4-2HH77" * 6


def _canvas(*codes: tuple[str, int, int, int]) -> np.ndarray:
    """A white 1280 x 720 frame with each (text, module px, centre x, centre y) code drawn on it."""
    frame = np.full((720, 1280), 255, np.uint8)
    for text, module, cx, cy in codes:
        img = synthetic.code_image(text, module)
        h, w = img.shape
        frame[cy - h // 2 : cy - h // 2 + h, cx - w // 2 : cx - w // 2 + w] = img
    return frame


def test_several_codes_in_a_frame_the_largest_wins() -> None:
    """A second phone behind the first, further away: the nearer (larger) code is the one verified."""
    d = Decoder(retry="never")
    assert d.decode(_canvas((A, 3, 300, 360), (B, 5, 900, 360))).text == B
    assert d.decode(_canvas((A, 5, 300, 360), (B, 3, 900, 360))).text == A


def test_several_codes_of_one_size_the_most_central_wins() -> None:
    d = Decoder(retry="never")
    assert d.decode(_canvas((A, 4, 250, 360), (B, 4, 760, 360))).text == B
    assert d.decode(_canvas((A, 4, 520, 360), (B, 4, 1050, 360))).text == A


def test_choice_depends_on_the_codes_not_on_the_order_they_were_found() -> None:
    reads = [_Read("x", 100.0, 50.0), _Read("y", 95.0, 10.0), _Read("z", 50.0, 0.0)]
    assert _choose(reads) == _choose(reads[::-1]) == "y"  # x and y are the same size; y is more central
    assert _choose([_Read("b", 10.0, 5.0), _Read("a", 10.0, 5.0)]) == "a"
    assert _choose([]) is None


def test_large_photograph_is_read_at_full_size_first() -> None:
    """A small code in a 12-megapixel photograph: shrunk to 1920 px first, its modules would fall below a pixel."""
    photo = np.full((3000, 4000), 235, np.uint8)
    code = synthetic.code_image(A, 2)
    photo[1400 : 1400 + code.shape[0], 1800 : 1800 + code.shape[1]] = code
    decoded = Decoder(retry="always").decode(photo)
    assert decoded.text == A and decoded.decoder == "zxing"


def test_text_is_the_codes_content_not_a_display_rendering() -> None:
    """Control characters come back as themselves, not spelled out as <SOH> the way zxing-cpp displays them."""
    text = "\x01\x10AD:SUB:阿;;"
    img = np.kron(np.pad(np.array(segno.make_qr(text, encoding="utf-8").matrix, np.uint8), 4), np.ones((6, 6)))
    frame = np.where(img > 0, 0, 255).astype(np.uint8)
    assert Decoder(retry="never").decode(frame).text == text


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Verifier, SigningKey]]:
    """A venue verifier synced in-process at NOW, and the issuer key its trust list holds."""
    root, issuer = SigningKey.generate(), SigningKey.generate()
    entry = IssuerEntry(issuer.public(), "SH", NOW - DAY, NOW + DAY, status_uri="/status/SH")
    bodies = {
        "/v1/trust-list": sign_trust_list([entry], root, version=1, now=NOW, ttl=DAY),
        "/status/SH": sign_status_list(
            StatusList(64, 2), issuer, uri="/status/SH", issuer="SH", version=1, now=NOW, valid_for=DAY, ttl=300
        ),
    }
    path = Path(tmp_path_factory.mktemp("kiosk")) / "state"
    v = Verifier.init(path, "http://127.0.0.1", root.public(), "venue", "kiosk-t", fetcher=ListFetcher(bodies))
    assert v.sync(now=NOW).ok
    yield v, issuer
    v.close()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"\xff\xfe\x00\x81binary\x00\xc3", "not_a_code", id="binary"),
        pytest.param(b"SM1:" + "二维码".encode("gb18030"), "malformed", id="gb18030-after-our-prefix"),
        pytest.param(b"\x1b[2J\x1b[31mSM1:", "not_a_code", id="terminal-escapes"),
    ],
)
def test_binary_or_non_utf8_content_is_denied_not_crashed(
    content: bytes, reason: str, kiosk: tuple[Verifier, SigningKey]
) -> None:
    v, _ = kiosk
    qr = segno.make_qr(content, mode="byte")
    frame = np.where(np.kron(np.pad(np.array(qr.matrix, np.uint8), 4), np.ones((6, 6))) > 0, 0, 255).astype(np.uint8)
    text = Decoder(retry="always").decode(frame).text
    assert text is not None
    verdict = v.verify(text, now=NOW + 1)
    assert verdict.decision == "DENY" and verdict.reason == reason


def _flips(code: str) -> Iterator[str]:
    """Misreads of ``code``: every Base45 character replaced by two others, and every bit of the decoded
    message flipped once (re-encoded as the text a decoder would return)."""
    body = code[len("SM1:") :]
    for i, ch in enumerate(body):
        for other in (ALPHABET[(ALPHABET.index(ch) + 1) % 45], ALPHABET[(ALPHABET.index(ch) + 17) % 45]):
            yield "SM1:" + body[:i] + other + body[i + 1 :]
    message = bytearray(b45decode(body))
    for bit in range(len(message) * 8):
        flipped = bytearray(message)
        flipped[bit // 8] ^= 1 << (bit % 8)
        yield "SM1:" + b45encode(bytes(flipped))


def test_bit_flipped_decoder_output_is_never_allowed(kiosk: tuple[Verifier, SigningKey]) -> None:
    """A misread is never a wrong ALLOW: the signature covers every byte a flip can reach."""
    v, issuer = kiosk
    code = mint(Claims.dynamic(b"\x05" * 8, Status.GREEN, NOW), issuer)
    assert v.verify(code, now=NOW + 1).decision == "ALLOW"
    reasons: dict[str, int] = {}
    count = 0
    for misread in _flips(code):
        verdict = v.verify(misread, now=NOW + 1)
        assert verdict.decision != "ALLOW", misread
        reasons[str(verdict.reason)] = reasons.get(str(verdict.reason), 0) + 1
        count += 1
    assert count == (len(code) - 4) * 2 + len(b45decode(code[4:])) * 8
    assert set(reasons) <= {"bad_signature", "malformed", "unknown_key", "not_a_code"}, reasons
    assert reasons.get("bad_signature", 0) > count // 2


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _Frames:
    def __init__(self, frames: list[np.ndarray], clock: _Clock, step: float) -> None:
        self.frames, self.clock, self.step = frames, clock, step

    def read(self) -> np.ndarray:
        if not self.frames:
            raise EndOfStream
        self.clock.t += self.step
        return self.frames.pop(0)


def test_code_flickering_in_and_out_of_focus_gets_one_verdict() -> None:
    """Two seconds of a hand going in and out of focus at 15 fps: read, unreadable, read again... one verdict."""
    sharp = synthetic.frame(A, 3, hard=False)
    soft = cv2.GaussianBlur(sharp, (0, 0), 9)  # nothing left to read
    frames = [sharp if i % 3 != 1 else soft for i in range(30)]
    decoder = Decoder(retry="never")
    assert decoder.decode(soft).text is None and decoder.decode(sharp).text == A
    clock, verifier = _Clock(), CountingVerifier()
    stats = Scanner(_Frames(frames, clock, 1 / 15), verifier, out=io.StringIO(), clock=clock).run()
    assert stats.frames == 30 and stats.decoded == 20
    assert verifier.texts == [A]


def test_live_retries_stop_at_the_budget_and_resume_on_the_next_frame() -> None:
    """Each retry takes 30 ms on the injected clock and the budget is 40 ms: two retries a frame, and the next
    frame carries on from the third, so a long chain is tried in full over a few frames."""
    clock = _Clock()
    tried: list[str] = []

    def retry(name: str, result: str | None = None) -> tuple[str, Any]:
        def run(views: _Views) -> str | None:
            tried.append(name)
            clock.t += 0.030
            return result

        return name, run

    chain = [retry("r0"), retry("r1"), retry("r2"), retry("r3"), retry("r4", "found")]
    d = Decoder(retry="auto", retry_every=1, budget_ms=40, camera_chain=chain, clock=clock)
    empty = np.full((720, 1280), 128, np.uint8)
    assert d.decode(empty).text is None and tried == ["r0", "r1"]
    assert d.decode(empty).text is None and tried[2:] == ["r2", "r3"]
    found = d.decode(empty)
    assert found.text == "found" and found.decoder == "r4" and tried[4:] == ["r4"]
    assert d.decode(empty).text is None and tried[5:] == ["r0", "r1"]  # a read starts the chain over
    assert round(found.ms) == 30
