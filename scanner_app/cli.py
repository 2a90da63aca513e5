"""``suishenma-scanner``: the kiosk app. ``main(argv) -> int``.

suishenma-scanner --state DIR [--camera 0 | --video FILE | --images DIR | --url RTSP | --stdin | --hid DEV]
                  [--fullscreen | --headless] [--config FILE.toml]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from suishenma import cliutil

from .config import ScannerConfig, load_config
from .cues import GateHook, Sound
from .decode import Decoder
from .dedup import Dedup
from .display import window_problem
from .errors import NO_STATE, STATE_REQUIRED
from .hid import HidSource, StdinSource, open_evdev
from .loop import Scanner, SyncThread
from .sources import CaptureSource, FrameSource, ImageFolderSource, VideoFileSource

log = logging.getLogger("scanner")


def _parser() -> argparse.ArgumentParser:
    p = cliutil.BilingualParser(prog="suishenma-scanner", description="随申码扫码终端 / Suishenma kiosk scanner")
    p.add_argument("--version", action="version", version=f"%(prog)s {cliutil.version()}")
    p.add_argument("--state", help="verifier state folder (suishenma-verifier init)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, help="webcam index (default 0)")
    src.add_argument("--video", help="video file")
    src.add_argument("--images", help="folder of images")
    src.add_argument("--url", help="RTSP or HTTP stream URL")
    src.add_argument("--stdin", action="store_true", help="codes typed by a keyboard-wedge reader, one per line")
    src.add_argument("--hid", help="a keyboard-wedge reader as a Linux input device, e.g. /dev/input/event3")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fullscreen", action="store_true")
    mode.add_argument("--headless", action="store_true", help="no window: one JSON line per verdict on stdout")
    p.add_argument("--config", type=Path, help="TOML file (see docs/scanner.example.toml)")
    p.add_argument("--hook-command", help="run on ALLOW, verdict JSON on stdin")
    p.add_argument("--hook-url", help="POST the verdict JSON here on ALLOW (local turnstile controller)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames (testing)")
    p.add_argument("--no-sync", action="store_true", help="do not sync in the background")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus GET /metrics on this port (off)")
    p.add_argument("--metrics-host", default=None, help="address for --metrics-port (default loopback)")
    return p


def make_source(cfg: ScannerConfig) -> FrameSource:
    """Raises: FileNotFoundError for a missing video file or image folder."""
    if cfg.video:
        return VideoFileSource(Path(cfg.video))
    if cfg.images:
        return ImageFolderSource(Path(cfg.images), repeat=cfg.image_repeat)
    if cfg.url:
        return CaptureSource(cfg.url)
    return CaptureSource(cfg.camera if cfg.camera is not None else 0)


def _typed_source(args: argparse.Namespace) -> FrameSource | None:
    """A keyboard-wedge source when ``--stdin`` or ``--hid`` is given (the device opens in the loop)."""
    if args.stdin:
        return StdinSource(sys.stdin)
    if args.hid:
        path = args.hid
        return HidSource(lambda: open_evdev(path))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        cfg = load_config(
            args.config,
            state=args.state,
            camera=args.camera,
            video=args.video,
            images=args.images,
            url=args.url,
            fullscreen=args.fullscreen,
            headless=args.headless,
            hook_command=args.hook_command,
            hook_url=args.hook_url,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
        )
    except cliutil.CliError as exc:
        cliutil.print_exception(exc)
        return 2
    logging.basicConfig(
        level=cfg.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the verdicts
    if not cfg.state:
        cliutil.print_error(*STATE_REQUIRED)
        return 2
    if not cfg.headless and (problem := window_problem()) is not None:  # before Qt can abort the process
        cliutil.print_error(*problem)
        return 2
    from suishenma import SuishenmaError, UsageError
    from verifier import Verifier

    try:
        verifier = Verifier.open(cfg.state)
        source = _typed_source(args) or make_source(cfg)
    except UsageError:  # Verifier.open's only one: a folder never initialised
        cliutil.print_error(*NO_STATE.format(state=cfg.state))
        return 2
    except (SuishenmaError, cliutil.CliError) as exc:
        cliutil.print_exception(exc)
        return 2
    from .metrics_server import KioskMetrics, MetricsPortError

    metrics = None
    if cfg.metrics_port is not None:
        try:
            metrics = KioskMetrics.start(verifier, cfg.metrics_host, cfg.metrics_port)
        except MetricsPortError as exc:
            cliutil.print_exception(exc)
            getattr(source, "close", lambda: None)()
            verifier.close()
            return 2
    checked = verifier if metrics is None else metrics.metered  # verdicts and syncs counted for /metrics
    display = None
    if not cfg.headless:
        from .window import Window

        display = Window(cfg.fullscreen)
    scanner = Scanner(
        source,
        checked,
        decoder=Decoder(cfg.retry, cfg.retry_every, cfg.max_side),
        dedup=Dedup(cfg.forget_s),
        out=sys.stdout if cfg.headless else None,
        display=display,
        sound=Sound(cfg.sound and not cfg.headless),
        hook=GateHook(cfg.hook_command, cfg.hook_url, cfg.hook_timeout_s),
        verdict_hold_s=cfg.verdict_hold_s,
        # a live camera paces itself; files run as fast as they decode unless shown in a window or from a folder
        max_fps=cfg.max_fps if isinstance(source, ImageFolderSource) or not cfg.headless else 0.0,
    )
    sync = None if args.no_sync else SyncThread(checked, cfg.sync_interval_s)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if sync:
        sync.start()
    try:
        stats = scanner.run(args.max_frames, stop)
    except KeyboardInterrupt:
        stats = scanner.stats
    finally:
        if scanner.hook:
            scanner.hook.drain()
        if sync:
            sync.stop()
            sync.join(timeout=15)
        getattr(source, "close", lambda: None)()
        if display is not None:
            display.close()
        if metrics is not None:
            metrics.close()
        verifier.close()
    log.info("%d frames, %d codes read, %d verdicts", stats.frames, stats.decoded, stats.verdicts)
    return 0


def main_exit() -> None:
    cliutil.run(main)
