"""``suishenma-verifier``: init, sync, verify, status, serve, log export. ``main(argv) -> int``, tested in-process.

verify exits 0 ALLOW, 1 DENY, 3 REFER, 2 on a usage error. serve runs until SIGTERM or SIGINT and then exits
0; 2 on a usage error or an address it cannot listen on (a port in use), 1 when the service failed to start.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import errno
import ipaddress
import json
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from suishenma import SuishenmaError, cliutil, load_verification_key

from ._verifier import Verifier
from .kiosk_key import read_key_file
from .store import ScanRow
from .verdict import Decision

EXIT = {Decision.ALLOW: 0, Decision.DENY: 1, Decision.REFER: 3}


def _parser() -> argparse.ArgumentParser:
    p = cliutil.BilingualParser(prog="suishenma-verifier", description="随申码离线核验 / Suishenma offline verifier")
    cliutil.add_version(p)
    sub = p.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create a state folder pinned to a root key")
    init.add_argument("--issuer", required=True, help="issuer base URL (mirrors separated by commas)")
    init.add_argument("--root", type=Path, required=True, help="root public key (PEM) to pin")
    init.add_argument("--scenario", required=True, help="venue, hospital, transit, or a policy TOML file")
    init.add_argument("--state", type=Path, required=True)
    init.add_argument("--kiosk-id", default="kiosk")
    s = sub.add_parser("sync", help="download lists, upload scan logs")
    s.add_argument("--state", type=Path, required=True)
    s.add_argument("--json", action="store_true")
    v = sub.add_parser("verify", help="decide on a code (exit 0 ALLOW, 1 DENY, 3 REFER)")
    v.add_argument("--state", type=Path, required=True)
    cliutil.add_code_argument(v)
    v.add_argument("--json", action="store_true")
    v.add_argument("--at", default=None, help="ISO 8601 instant instead of now (testing)")
    st = sub.add_parser("status", help="list versions, ages and staleness")
    st.add_argument("--state", type=Path, required=True)
    st.add_argument("--json", action="store_true")
    sv = sub.add_parser(
        "serve",
        help="the local HTTP service for gate controllers (POST /v1/verify)",
        description="本地核验服务 / the local HTTP service for gate controllers (POST /v1/verify). Runs until "
        "SIGTERM or SIGINT (Ctrl-C). Exit 0 after such a clean stop; 2 on a usage error or when the address "
        "cannot be listened on (the port is already in use); 1 when the service failed to start.",
    )
    sv.add_argument("--state", type=Path, required=True)
    sv.add_argument("--host", default="127.0.0.1", help="default loopback; any other address needs --token-file")
    sv.add_argument("--port", type=_port, default=8765, help="TCP port (default 8765)")
    sv.add_argument("--token-file", type=Path, default=None, help="bearer token, in a file only its owner can read")
    sv.add_argument("--sync-interval", type=float, default=300.0, help="seconds between background syncs")
    sv.add_argument("--no-sync", action="store_true", help="no background sync")
    sv.add_argument("--limit-concurrency", type=int, default=512, help="connections beyond this get 503")
    log = sub.add_parser("log", help="the scan log").add_subparsers(dest="action", required=True)
    ex = log.add_parser("export", help="write every scan record")
    ex.add_argument("--state", type=Path, required=True)
    ex.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    ex.add_argument("--out", type=Path, default=None, help="file (default: stdout)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "verify":
            args.code = cliutil.read_code(args)
        with Verifier.open(args.state) as v:
            if args.command == "sync":
                return _sync(v, args)
            if args.command == "verify":
                return _verify(v, args)
            if args.command == "status":
                return _status(v, args)
            if args.command == "serve":
                return _serve(v, args)
            return _export(v, args)
    except SuishenmaError as exc:
        cliutil.print_exception(exc)
        return 2
    except BrokenPipeError:  # the reader went away (| head): cliutil.run ends quietly with 141
        raise
    except OSError as exc:
        cliutil.print_error(
            f"无法读写 {exc.filename or '文件'}（{exc.strerror or exc}）",
            f"cannot read or write {exc.filename or 'a file'}: {exc.strerror or exc}",
        )
        return 2
    except ValueError as exc:
        cliutil.print_error(f"值无效（{exc}）", f"invalid value: {exc}")
        return 2


def _init(args: argparse.Namespace) -> int:
    scenario: str | Path = Path(args.scenario) if args.scenario.endswith(".toml") else args.scenario
    root = load_verification_key(args.root)
    with Verifier.init(args.state, args.issuer, root, scenario, args.kiosk_id) as v:
        print(
            f"verifier state in {args.state}: scenario {v.policy.name}, root key {root.kid.hex()}, kiosk {v.kiosk_id}"
        )
    return 0


def _sync(v: Verifier, args: argparse.Namespace) -> int:
    report = v.sync()
    if args.json:
        print(json.dumps(dataclasses.asdict(report), ensure_ascii=False))
        return 0 if report.ok else 1
    print(
        f"trust list version {report.trust_list_version}; status lists {report.status_lists}; "
        f"updated {report.updated or 'nothing'}; uploaded {report.uploaded} scan records"
    )
    for e in report.errors:
        cliutil.print_warning(f"同步未完成：{e}", e)
    return 0 if report.ok else 1


def _verify(v: Verifier, args: argparse.Namespace) -> int:
    now = datetime.fromisoformat(args.at.replace("Z", "+00:00")).timestamp() if args.at else None
    verdict = v.verify(args.code, now=now)
    if args.json:
        print(json.dumps(verdict.as_dict(), ensure_ascii=False))
    else:
        shown = " ".join(f"{k}={val}" for k, val in verdict.display.items())
        print(f"{verdict.decision.value} {verdict.reason.value}: {verdict.message_zh} / {verdict.message_en} {shown}")
    return EXIT[verdict.decision]


def _status(v: Verifier, args: argparse.Namespace) -> int:
    """Exit 0 when the lists are usable, 1 when they are stale or were never synced, or the clock is wrong."""
    h = v.health()
    code = 1 if h.stale or h.clock_wrong or h.last_successful_sync is None else 0
    if args.json:
        print(json.dumps(dataclasses.asdict(h), ensure_ascii=False))
        return code
    synced = "never" if h.sync_age_s is None else f"{h.sync_age_s} s ago"
    print(f"scenario {h.scenario}; last successful sync {synced}; upload {h.upload_error or 'ok'}")
    print(f"trust list version {h.trust_list_version}, confirmed {h.trust_list_age_s} s ago")
    for issuer, lst in h.status_lists.items():
        print(
            f"status list {issuer}: version {lst.version}, confirmed {lst.age_s} s ago{' STALE' if lst.stale else ''}"
            + (f" (last sync: {lst.error})" if lst.error else "")
        )
    for issuer in h.missing_status_lists:
        print(f"status list {issuer}: not held")
    if h.clock_skew_s is None:
        print("clock: not measured yet (sync first)")
    else:
        ahead = "ahead of" if h.clock_skew_s >= 0 else "behind"
        print(
            f"clock: {abs(h.clock_skew_s):g} s {ahead} the issuers' ({h.clock_source})"
            + (" — 时钟错误 CLOCK WRONG: fix NTP" if h.clock_wrong else "")
        )
    print(
        f"{'STALE' if h.stale else 'fresh'}; {'offline (last sync failed)' if h.offline else 'online'}; "
        f"{h.scans_today} scans today, {h.pending_uploads} waiting to upload"
        + (f", {h.upload_conflicts} in conflict with the issuer's records" if h.upload_conflicts else "")
    )
    return code


def _serve(v: Verifier, args: argparse.Namespace) -> int:
    """Run the local service until stopped. Refuses (exit 2) to listen beyond loopback without a token.

    Raises:
        UsageError: the token file is missing, readable by others, or empty.
    """
    token = read_key_file(args.token_file, "token file") if args.token_file else None
    if token is None and not _loopback(args.host):
        cliutil.print_error(
            f"--host {args.host} 不是本机回环地址：请给出 --token-file（权限 0600、内含 Bearer 令牌的文件）",
            f"--host {args.host} is not loopback: give --token-file (a 0600 file holding a bearer token)",
        )
        return 2
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        if exc.errno == errno.EADDRINUSE:
            cliutil.print_error(
                f"端口 {args.port} 已被占用（{args.host}）：请先停止占用它的程序，或用 --port 换一个端口",
                f"port {args.port} on {args.host} is already in use: stop what holds it, or choose another --port",
            )
        else:
            cliutil.print_error(f"无法在 {where} 上监听（{exc.strerror or exc}）", f"cannot listen on {where}: {exc}")
        return cliutil.EXIT_USAGE
    with sock:
        return _run_service(v, args, token, sock)


def _run_service(v: Verifier, args: argparse.Namespace, token: str | None, sock: socket.socket) -> int:
    """Serve on the bound ``sock`` until SIGTERM or SIGINT; one line on stdout when listening, one when stopped.

    Exit 0 after a clean stop, 1 when the service failed to start on the socket (its log says why).
    """
    import uvicorn  # the web stack is loaded only here: the library never imports it

    from .local_service import create_app

    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    state = args.state.resolve()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # listening, the lifespan (background sync) started
                print(
                    f"随申码本地核验服务已启动：{url}，状态目录 {state} · "
                    f"Suishenma local verifier listening on {url}, state folder {state}",
                    flush=True,
                )

    app = create_app(v, token=token, sync_interval=None if args.no_sync else args.sync_interval)
    config = uvicorn.Config(
        app,
        access_log=False,
        limit_concurrency=args.limit_concurrency,
        timeout_keep_alive=5,
        log_level="warning",
    )
    server = Server(config)
    signals: list[int] = []

    def stop(signum: int, _: object) -> None:
        # Uvicorn takes these signals over while it serves, and once it has shut down raises the one it got
        # again, into the handler it found: this one, so that the stop is reported and the exit is 0 (Python's
        # own handlers would end the process with KeyboardInterrupt or SIGTERM's default action instead).
        signals.append(signum)
        server.should_exit = True  # a signal before uvicorn took over still stops it

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        zh, en = (
            "本地核验服务未能启动（原因见上方日志）",
            "the local verifier service did not start (see the log above)",
        )
        cliutil.print_error(zh, en)
        return 1
    by = signal.Signals(signals[0]).name if signals else ""
    zh, en = (f"（{by}）", f" ({by})") if by else ("", "")
    print(f"随申码本地核验服务已停止{zh} · Suishenma local verifier stopped{en}", flush=True)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` as uvicorn would bind it, for uvicorn to listen on: binding here
    is what lets a port already taken be reported plainly, with no window for another process to take it.

    Raises:
        OSError: the port is taken (``errno.EADDRINUSE``), the address is not this machine's, the name does
            not resolve, or the port needs privileges.
    """
    literal = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in literal else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses a port in TIME_WAIT
        sock.bind((literal, port))
    except OSError:
        sock.close()
        raise
    return sock


def _port(text: str) -> int:
    """Raises: argparse.ArgumentTypeError: not a TCP port number."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _export(v: Verifier, args: argparse.Namespace) -> int:
    out: TextIO = args.out.open("w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        names = [f.name for f in dataclasses.fields(ScanRow)]
        writer = csv.writer(out) if args.format == "csv" else None
        if writer:
            writer.writerow(names)
        for row in v.store.scans():
            values = dataclasses.asdict(row)
            values["at"] = datetime.fromtimestamp(row.at, UTC).isoformat().replace("+00:00", "Z")
            if writer:
                writer.writerow([values[n] for n in names])
            else:
                out.write(json.dumps(values, ensure_ascii=False) + "\n")
    finally:
        if args.out:
            out.close()
    return 0


def main_exit() -> None:
    cliutil.run(main)
