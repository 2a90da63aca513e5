"""Scanner decoding and the frame loop: read rate and time per decoder, and of the whole pipeline.

Image sets (``image_sets``; tests/scanner_app/test_never_worse.py reads the same ones):

- ``blackbox``: zxing's 179 photographed QR codes (../shared/data/qr/zxing-blackbox, at 0°), still images;
- ``synthetic``: 200 generated 720p frames of a signed code with hard degradations (two to four of
  perspective, blur, motion blur, glare, dimming, noise, JPEG artefacts, a phone screen held at an angle);
- ``phone``: phones held in front of a webcam (testing/phone_screens.py), ``PHONE_PER_CATEGORY`` frames in
  each category, reported per category.

Every generated frame shows the same code, minted at a fixed instant with a fixed key, so the sets are the
same in every run. Each set is read by zxing-cpp alone, pyzbar alone and the pipeline (``Decoder``, still
images: every retry), and the pipeline must read every image zxing-cpp alone reads. Then decode + verify
per 720p frame as the kiosk runs it (live retry policy, venue verifier, durable log), and the frame loop's
throughput against a 30 fps camera. Ratios are of the same run (DESIGN §8).

``--chain`` also prints, per set, what each retry of the pipeline's chains recovers after zxing-cpp: alone,
and after the retries before it (the measurement the chain's order comes from).

Last line: ``blackbox = X.X%  synthetic = Y.Y%  median_ms = Z.Z``.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

from scanner_app import Decoder, Scanner  # noqa: E402
from scanner_app.decode import CAMERA_CHAIN, PHOTO_CHAIN, PHOTO_MAX_SIDE, _Views, _zxing, to_gray, zbar, zxing  # noqa: E402
from scanner_app.sources import EndOfStream  # noqa: E402
from suishenma import (  # noqa: E402
    Claims,
    IssuerEntry,
    SigningKey,
    Status,
    StatusList,
    mint,
    sign_status_list,
    sign_trust_list,
)
from testing import phone_screens as screens  # noqa: E402
from testing import synthetic_frames as synthetic  # noqa: E402
from verifier import FetchResult, Verifier  # noqa: E402

BLACKBOX = ROOT.parent / "shared" / "data" / "qr" / "zxing-blackbox"
DAY = 86400
NOW = 1_790_000_000  # the generated frames' code is minted here, and verified here
SYNTHETIC_FRAMES = 200
PHONE_PER_CATEGORY = 30
Item = tuple[np.ndarray, str, str]  # image, expected text, label (file name or category)


def issuer_key() -> SigningKey:
    """A fixed Ed25519 key: the same code, so the same frames, in every run."""
    return SigningKey.from_private_key(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def bench_code() -> str:
    """The code every generated frame shows: a dynamic code with a masked name and ID (222 characters)."""
    claims = Claims.dynamic(b"\x01" * 8, Status.GREEN, NOW, name="张小三", id_number="310101199001011234")
    return mint(claims, issuer_key())


def blackbox_set() -> list[Item]:
    """zxing's photographed codes with their expected text; empty when the public data is absent."""
    items = []
    for png in sorted(BLACKBOX.glob("qrcode-*/*.png")):
        txt = png.with_suffix(".txt")
        if txt.exists():
            image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
            if image is not None:
                expected = txt.read_bytes().decode("utf-8", "replace")
                items.append((np.asarray(image), expected, f"{png.parent.name}/{png.name}"))
    return items


def synthetic_set(code: str) -> Iterator[Item]:
    for seed in range(SYNTHETIC_FRAMES):
        yield synthetic.frame(code, seed, hard=True), code, str(seed)


def phone_set(code: str) -> Iterator[Item]:
    for s in screens.samples(code, PHONE_PER_CATEGORY):
        yield s.frame, code, s.category


def image_sets(code: str) -> dict[str, Callable[[], Iterator[Item] | list[Item]]]:
    """Every image set of the benchmark, each made on demand."""
    return {"blackbox": blackbox_set, "synthetic": lambda: synthetic_set(code), "phone": lambda: phone_set(code)}


def matches(got: str | None, expected: str) -> bool:
    return got is not None and got.strip() == expected.strip()


def read_all(items: list[Item]) -> dict[str, list[tuple[bool, float]]]:
    """Each decoder's (read, ms) per item: zxing-cpp alone, pyzbar alone, the pipeline."""
    pipeline = Decoder(retry="always")
    readers: dict[str, Callable[[np.ndarray], str | None]] = {
        "zxing-cpp": lambda img: zxing(to_gray(img))[0],
        "pyzbar": lambda img: zbar(to_gray(img)),
        "pipeline": lambda img: pipeline.decode(img).text,
    }
    out: dict[str, list[tuple[bool, float]]] = {name: [] for name in readers}
    for img, expected, _label in items:
        for name, read in readers.items():
            t = time.perf_counter()
            got = read(img)
            out[name].append((matches(got, expected), (time.perf_counter() - t) * 1000))
    return out


def report(title: str, items: list[Item], results: dict[str, list[tuple[bool, float]]]) -> float:
    print(f"{title}:")
    for name, rows in results.items():
        hits = sum(ok for ok, _ in rows)
        times = [ms for _, ms in rows]
        print(
            f"  {name:<10} {hits:4d}/{len(rows):<4d} {hits / len(rows) * 100:6.1f} %"
            f"   median {statistics.median(times):6.2f} ms   mean {statistics.fmean(times):6.2f} ms"
        )
    zx, pipe = results["zxing-cpp"], results["pipeline"]
    lost = sum(z and not p for (z, _), (p, _) in zip(zx, pipe, strict=True))
    gained = sum(p for p, _ in pipe) - sum(z for z, _ in zx)
    ratio = statistics.fmean(ms for _, ms in pipe) / statistics.fmean(ms for _, ms in zx)
    print(
        f"  pipeline vs zxing-cpp alone: +{gained} read, {lost} of zxing-cpp's reads lost (must be 0);"
        f" mean time {ratio:.1f}x"
    )
    return sum(p for p, _ in pipe) / len(pipe) * 100


def per_category(items: list[Item], results: dict[str, list[tuple[bool, float]]]) -> None:
    print(f"  per category ({PHONE_PER_CATEGORY} frames each):  zxing-cpp   pyzbar   pipeline")
    for category in screens.CATEGORIES:
        idx = [i for i, (_, _, label) in enumerate(items) if label == category]
        shares = [
            sum(results[name][i][0] for i in idx) / len(idx) * 100 for name in ("zxing-cpp", "pyzbar", "pipeline")
        ]
        print(f"    {category:<12} {shares[0]:16.1f} % {shares[1]:7.1f} % {shares[2]:8.1f} %")


def chain_report(title: str, items: list[Item]) -> None:
    """What each retry recovers after zxing-cpp, alone and after the retries before it in its chain."""
    misses = []
    for img, expected, label in items:
        gray = to_gray(img)
        text, found = _zxing(gray)
        if not matches(text, expected):
            misses.append((_Views(img, gray, found), expected, label))
    print(f"  {title}: retries on zxing-cpp's {len(misses)} misses (alone / after the ones before / median ms)")
    for chain_name, chain, photo in (("photo", PHOTO_CHAIN, True), ("camera", CAMERA_CHAIN, False)):
        subset = [m for m in misses if (max(m[0].gray.shape[:2]) <= PHOTO_MAX_SIDE) == photo]
        if not subset:
            continue
        left = list(range(len(subset)))
        for name, attempt in chain:
            times, alone = [], set()
            for i, (views, expected, _label) in enumerate(subset):
                t = time.perf_counter()
                if matches(attempt(views), expected):
                    alone.add(i)
                times.append((time.perf_counter() - t) * 1000)
            after = [i for i in left if i in alone]
            left = [i for i in left if i not in alone]
            print(
                f"    {chain_name:<6} {name:<28} +{len(alone):3d} / +{len(after):3d} / {statistics.median(times):6.1f}"
            )
        print(f"    {chain_name:<6} still unread: {len(left)} of {len(subset)}")


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


class AtInstant:
    """The verifier at the instant the generated codes were minted (the frame loop reads no clock of ours)."""

    def __init__(self, verifier: Verifier, now: float) -> None:
        self.verifier, self.now = verifier, now

    def verify(self, text: str, now: float | None = None) -> Any:
        return self.verifier.verify(text, now=self.now)

    def sync(self, now: float | None = None) -> Any:
        return self.verifier.sync(now=self.now)

    def health(self, now: float | None = None) -> Any:
        return self.verifier.health(now=self.now)


def live(frames: list[np.ndarray]) -> tuple[list[float], float, int, int]:
    """Decode + verify per frame with the live retry policy; then the frame loop's throughput."""
    root, issuer = SigningKey.generate(), issuer_key()
    entry = IssuerEntry(issuer.public(), "SH", NOW - DAY, NOW + DAY, status_uri="/status/SH")
    bodies = {
        "/v1/trust-list": sign_trust_list([entry], root, version=1, now=NOW, ttl=DAY),
        "/status/SH": sign_status_list(
            StatusList(1024, 2), issuer, uri="/status/SH", issuer="SH", version=1, now=NOW, valid_for=DAY, ttl=300
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        v = Verifier.init(
            Path(tmp) / "k", "http://127.0.0.1", root.public(), "venue", "bench", fetcher=ListFetcher(bodies)
        )
        assert v.sync(now=NOW).ok
        decoder = Decoder(retry="auto")
        per_frame, allowed = [], 0
        for f in frames:  # every frame decoded and, when read, verified: the worst case for the loop
            t = time.perf_counter()
            text = decoder.decode(f).text
            if text is not None:
                allowed += v.verify(text, now=NOW + 1).decision == "ALLOW"
            per_frame.append((time.perf_counter() - t) * 1000)
        loop_frames = frames * 2
        t = time.perf_counter()
        stats = Scanner(Frames(loop_frames), AtInstant(v, NOW + 1), out=io.StringIO()).run()
        fps = stats.frames / (time.perf_counter() - t)
        v.close()
    return per_frame, fps, stats.frames, allowed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    code = bench_code()
    shares: dict[str, float] = {}
    kept: dict[str, list[Item]] = {}
    for name, make in image_sets(code).items():
        items = list(make())
        if not items:
            print(f"{name}: skipped ({BLACKBOX} not found)")
            shares[name] = float("nan")
            continue
        kept[name] = items
        title = {
            "blackbox": "zxing blackbox (photographed codes, 0°)",
            "synthetic": f"{len(items)} generated 720p frames, hard degradations ({len(code)}-character code)",
            "phone": f"phone screens in front of a webcam, {len(items)} generated 720p frames",
        }[name]
        results = read_all(items)
        shares[name] = report(title, items, results)
        if name == "phone":
            per_category(items, results)
    if "--chain" in args:
        print("retry chains:")
        for name, items in kept.items():
            chain_report(name, items)

    per_frame, fps, loop_frames, allowed = live([img for img, _, _ in kept["synthetic"]])
    median_ms = statistics.median(per_frame)
    print("decode + verify per 720p frame (live retry policy, venue verifier, durable log):")
    print(f"  median {median_ms:.2f} ms   p90 {np.percentile(per_frame, 90):.2f} ms   max {max(per_frame):.2f} ms")
    print(f"  {allowed} of {len(per_frame)} frames read and allowed")
    print(
        f"frame loop: {fps:.0f} frames/s over {loop_frames} frames ({'keeps up with' if fps >= 30 else 'SLOWER than'}"
        " a 30 fps camera)"
    )
    print(f"blackbox = {shares['blackbox']:.1f}%  synthetic = {shares['synthetic']:.1f}%  median_ms = {median_ms:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
