"""Scanner decoding and the frame loop: read rate and time per decoder, and of the whole pipeline.

- zxing's 179 photographed QR codes (../shared/data/qr/zxing-blackbox, at 0°), still images;
- 200 generated 720p frames of a signed code with hard degradations (two to four of perspective,
  blur, motion blur, glare, dimming, noise, JPEG artefacts, a phone screen held at an angle);
- decode + verify per 720p frame as the kiosk runs it (live retry policy, venue verifier, durable log),
  and the frame loop's throughput against a 30 fps camera.

Last line: ``blackbox = X.X%  synthetic = Y.Y%  median_ms = Z.Z``.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner_app import Decoder, Scanner, synthetic  # noqa: E402
from scanner_app.decode import to_gray, zbar, zxing  # noqa: E402
from scanner_app.sources import EndOfStream  # noqa: E402
from suishenma import Claims, IssuerEntry, SigningKey, Status, StatusList, mint, sign_status_list, sign_trust_list  # noqa: E402
from verifier import FetchResult, Verifier  # noqa: E402

BLACKBOX = ROOT.parent / "shared" / "data" / "qr" / "zxing-blackbox"
DAY = 86400


def rate(
    name: str, images: list[tuple[np.ndarray, str]], read: Callable[[np.ndarray], str | None]
) -> tuple[float, float]:
    hits, times = 0, []
    for img, expected in images:
        t = time.perf_counter()
        got = read(img)
        times.append((time.perf_counter() - t) * 1000)
        hits += got is not None and got.strip() == expected.strip()
    share = hits / len(images) * 100
    print(
        f"  {name:<34} {hits:4d}/{len(images):<4d} {share:6.1f} %   median {statistics.median(times):6.2f} ms"
        f"   mean {statistics.fmean(times):6.2f} ms"
    )
    return share, statistics.median(times)


def decoders(images: list[tuple[np.ndarray, str]]) -> float:
    gray = [(to_gray(i), e) for i, e in images]
    rate("zxing-cpp", gray, lambda g: zxing(g)[0])
    rate("pyzbar", gray, zbar)
    pipeline = Decoder(retry="always")
    share, _ = rate("pipeline (zxing-cpp, pyzbar, retries)", images, lambda i: pipeline.decode(i).text)
    return share


class ListFetcher:
    """Serves fixed list bytes in-process: the benchmark measures the kiosk, not the network."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies

    def fetch(self, url: str, etag: str | None, max_bytes: int) -> FetchResult:
        return FetchResult(200, self.bodies[url.split("127.0.0.1", 1)[1]], None)


class Frames:
    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.i = frames, 0

    def read(self) -> np.ndarray:
        if self.i >= len(self.frames):
            raise EndOfStream
        self.i += 1
        return self.frames[self.i - 1]


def main() -> int:
    print("zxing blackbox (photographed codes, 0°):")
    if BLACKBOX.is_dir():
        items = []
        for png in sorted(BLACKBOX.glob("qrcode-*/*.png")):
            if png.with_suffix(".txt").exists():
                items.append(
                    (
                        cv2.imread(str(png), cv2.IMREAD_GRAYSCALE),
                        png.with_suffix(".txt").read_bytes().decode("utf-8", "replace"),
                    )
                )
        blackbox = decoders(items)
    else:
        print(f"  skipped: {BLACKBOX} not found")
        blackbox = float("nan")

    now = int(time.time())
    root, issuer = SigningKey.generate(), SigningKey.generate()
    code = mint(Claims.dynamic(b"\x01" * 8, Status.GREEN, now, name="张小三", id_number="310101199001011234"), issuer)
    print(f"200 generated 720p frames, hard degradations ({len(code)}-character code):")
    frames = [synthetic.frame(code, seed, hard=True) for seed in range(200)]
    synth = decoders([(f, code) for f in frames])

    entry = IssuerEntry(issuer.public(), "SH", now - DAY, now + DAY, status_uri="/status/SH")
    bodies = {
        "/v1/trust-list": sign_trust_list([entry], root, version=1, now=now, ttl=DAY),
        "/status/SH": sign_status_list(
            StatusList(1024, 2), issuer, uri="/status/SH", issuer="SH", version=1, now=now, valid_for=DAY, ttl=300
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        v = Verifier.init(
            Path(tmp) / "k", "http://127.0.0.1", root.public(), "venue", "bench", fetcher=ListFetcher(bodies)
        )
        assert v.sync(now=now).ok
        live = Decoder(retry="auto")
        per_frame = []
        for f in frames:  # every frame decoded and, when read, verified: the worst case for the loop
            t = time.perf_counter()
            text = live.decode(f).text
            if text is not None:
                v.verify(text)
            per_frame.append((time.perf_counter() - t) * 1000)
        out = io.StringIO()
        loop_frames = frames * 2
        t = time.perf_counter()
        stats = Scanner(Frames(loop_frames), v, out=out).run()
        fps = stats.frames / (time.perf_counter() - t)
        v.close()
    median_ms = statistics.median(per_frame)
    print("decode + verify per 720p frame (live retry policy, venue verifier, durable log):")
    print(f"  median {median_ms:.2f} ms   p90 {np.percentile(per_frame, 90):.2f} ms   max {max(per_frame):.2f} ms")
    print(
        f"frame loop: {fps:.0f} frames/s over {stats.frames} frames ({'keeps up with' if fps >= 30 else 'SLOWER than'}"
        f" a 30 fps camera), {stats.verdicts} verdicts"
    )
    print(f"blackbox = {blackbox:.1f}%  synthetic = {synth:.1f}%  median_ms = {median_ms:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
