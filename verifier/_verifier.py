"""The embedding API: open a state folder for a scenario, verify scanned text, sync, report health."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from suishenma import (
    CodeError,
    CodeType,
    EntryStatus,
    SignedStatusList,
    TrustList,
    UsageError,
    VerificationKey,
    unprintable_character,
    verify,
)

from .clock import ClockReading, clock_wrong, issuer_time
from .fetch import Fetcher, HttpxFetcher, Poster
from .kiosk_key import KEY_FILE_NAME, KIOSK_KEY_ENV, KIOSK_KEY_FILE_ENV, kiosk_key, write_key_file
from .policy import Policy, resolve_policy
from .store import GroupCommitter, ScanArgs, Store
from .sync import SyncReason, SyncReport, sync_lists, upload_scans
from .trust_state import TRUST, TrustState, status_name
from .verdict import CORE_REASONS, Decision, Verdict, VerdictReason

PASSBACK = VerdictReason.PASSBACK

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListHealth:
    version: int
    age_s: int  # since an issuer last confirmed it
    expires_in_s: int
    stale: bool
    error: str | None = None  # why the last sync could not renew it (that region's outage), if it could not


@dataclass(frozen=True)
class Health:
    scenario: str
    trust_list_version: int | None
    trust_list_age_s: int | None
    stale: bool  # a list this scenario relies on is stale, expired or missing
    offline: bool  # the last list sync failed, or none ever succeeded
    last_successful_sync: int | None  # POSIX time the lists last synced without an error; None: never
    last_sync_attempt: int | None = None
    sync_age_s: int | None = None  # seconds since ``last_successful_sync``
    upload_error: str | None = None  # the last scan-log upload's failure, if it failed
    status_lists: Mapping[str, ListHealth] = field(default_factory=dict)
    scans_today: int = 0
    pending_uploads: int = 0
    upload_conflicts: int = 0  # records the issuer holds differently under the same seq (kept here)
    missing_status_lists: tuple[str, ...] = ()  # issuers in the trust list whose status list is not held
    clock_skew_s: float | None = None  # this clock minus the issuers', as of the last reading; None: unknown
    clock_source: str | None = None  # "signed" (a list's signed issue time) or "http-date" (the Date header)
    clock_checked_at: int | None = None
    clock_wrong: bool = False  # off by more than the scenario's skew allowance: codes are refused


@dataclass(frozen=True)
class _Draft:
    """A decision before it is logged: logging may still turn it into a replay refusal."""

    start: float
    at: int
    decision: Decision
    reason: VerdictReason
    display: Mapping[str, str] | None
    subject: str | None
    issuer: str | None
    replay: tuple[bytes, int] | None  # a single-use key to claim as the verdict is logged, and its expiry
    refusal: VerdictReason = VerdictReason.REPLAYED  # the reason when that key is already held


class Verifier:
    """Thread-safe: a frame loop may call ``verify`` while a background thread calls ``sync``."""

    def __init__(self, state_dir: Path, store: Store, fetcher: Fetcher | None = None, now: int | None = None) -> None:
        cfg = store.config()
        if "root_key" not in cfg:
            store.close()
            raise UsageError(f"{state_dir} is not an initialised verifier state folder: run init first")
        self.state_dir = state_dir
        self.store = store
        self.policy: Policy = resolve_policy(cfg["scenario"])
        self.issuer_urls = [u for u in cfg["issuer_urls"].split(",") if u]
        self.kiosk_id = cfg["kiosk_id"]
        self._api_key_file = cfg.get("kiosk_api_key_file")
        self._fetcher = fetcher
        self._own_fetcher = fetcher is None  # a fetcher passed in belongs to the caller
        self._sync_lock = threading.Lock()
        self.state = TrustState(VerificationKey.from_pem(cfg["root_key"].encode()))
        held, versions = store.lists()
        self.load_problems = self.state.load(held, versions, int(time.time()) if now is None else now)
        self.sync_state = _SyncState.load(cfg)
        # the latest time a verdict was logged since the floor was last measured (a clock floor too)
        self._newest_verdict = store.newest_verdict(self.sync_state.floor_seq)[1]

    @classmethod
    def init(
        cls,
        state_dir: Path | str,
        issuer_url: str,
        root_key: VerificationKey,
        scenario: str | Path = "venue",
        kiosk_id: str = "kiosk",
        *,
        fetcher: Fetcher | None = None,
        now: float | None = None,
    ) -> Verifier:
        """Create a state folder pinned to ``root_key``. ``scenario``: venue, hospital, transit or a TOML file.

        ``issuer_url`` may list mirrors separated by commas. The scan-log upload key is never an
        argument: when ``$SUISHENMA_KIOSK_API_KEY`` is set it is written to a 0600 file in the state
        folder; ``$SUISHENMA_KIOSK_API_KEY_FILE`` names a key file to use instead (see kiosk_key.py).

        Raises:
            UsageError: the folder is already initialised, the policy is invalid, or an issuer URL has no
                http(s) scheme or host.
        """
        state_dir = Path(state_dir)
        policy_text = Path(scenario).read_text("utf-8") if isinstance(scenario, Path) else scenario
        resolve_policy(policy_text)  # fail before writing anything
        urls = [u.strip().rstrip("/") for u in issuer_url.split(",") if u.strip()]
        for url in urls or [""]:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise UsageError(f"issuer URL {url!r} must start with https:// (or http://) and name a host")
        store = Store(state_dir)
        if "root_key" in store.config():
            store.close()
            raise UsageError(f"{state_dir} is already initialised; use a new folder or Verifier.open")
        values = {
            "issuer_urls": ",".join(urls),
            "root_key": root_key.pem().decode(),
            "scenario": policy_text,
            "kiosk_id": kiosk_id,
        }
        if os.environ.get(KIOSK_KEY_FILE_ENV):
            values["kiosk_api_key_file"] = str(Path(os.environ[KIOSK_KEY_FILE_ENV]).resolve())
        elif os.environ.get(KIOSK_KEY_ENV):
            key_file = write_key_file(state_dir / KEY_FILE_NAME, os.environ[KIOSK_KEY_ENV])
            values["kiosk_api_key_file"] = str(key_file.resolve())
        store.set_config(values)
        return cls(state_dir, store, fetcher, None if now is None else int(now))

    @classmethod
    def open(cls, state_dir: Path | str, *, fetcher: Fetcher | None = None, now: float | None = None) -> Verifier:
        """Reopen a state folder; cached lists are re-verified at ``now`` (unusable ones are set aside).

        Raises:
            UsageError: the folder was never initialised.
        """
        state_dir = Path(state_dir)
        if not (state_dir / "verifier.db").exists():
            raise UsageError(f"no verifier state in {state_dir}: run init first")
        return cls(state_dir, Store(state_dir), fetcher, None if now is None else int(now))

    def close(self) -> None:
        if self._own_fetcher and isinstance(self._fetcher, HttpxFetcher):
            self._fetcher.close()
        self.store.close()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # verification
    def verify(self, text: str, now: float | None = None) -> Verdict:
        """Decide on scanned text: a verdict for any input whatsoever, logged durably before return.

        Raises:
            sqlite3.Error (only): the decision could not be logged, e.g. the disk is full.
        """
        start = time.perf_counter()
        draft = self._draft(text, start, int(time.time() if now is None else now))
        if not self.store.record(*self._row(draft)):
            draft = self._replayed(draft)
            self.store.record(*self._row(draft))
        return self._logged(draft)

    async def verify_grouped(self, text: str, committer: GroupCommitter, now: float | None = None) -> Verdict:
        """``verify`` for a service on an event loop: the verdict's record is committed by ``committer``
        together with those of the requests in flight meanwhile (one fsync for the group), and the verdict
        is returned only once its record is durable. The replay check runs inside that commit, in arrival
        order, so of two presentations of one transit code in the same group only the first passes.

        Raises:
            sqlite3.Error (only): the decision could not be logged.
        """
        start = time.perf_counter()
        draft = self._draft(text, start, int(time.time() if now is None else now))
        if not await asyncio.wrap_future(committer.submit(self._row(draft))):
            draft = self._replayed(draft)
            await asyncio.wrap_future(committer.submit(self._row(draft)))
        return self._logged(draft)

    def _draft(self, text: str, start: float, at: int) -> _Draft:
        try:
            return self._decide(text, start, at)
        except Exception:  # a bug, not an input: refuse the code, keep the gate running, say why in the log
            log.exception("verify: unexpected error; the code is refused as malformed")
            return self._done(start, at, self.policy.on_invalid, VerdictReason.MALFORMED)

    def _row(self, d: _Draft) -> ScanArgs:
        return (d.at, self.kiosk_id, self.policy.name, d.decision, d.reason, d.subject, d.issuer, d.replay)

    def _replayed(self, d: _Draft) -> _Draft:
        """The code's single use (or its credential's entry) is spent: refused, and that is what is logged."""
        return replace(d, decision=self.policy.on_invalid, reason=d.refusal, replay=None)

    def _logged(self, d: _Draft) -> Verdict:
        """The verdict of a logged draft; its time is a floor for the clock from now on."""
        if (self._newest_verdict or 0) < d.at:
            self._newest_verdict = d.at
        return self._verdict(d)

    def _floor(self, trust: TrustList | None, status: Mapping[str, SignedStatusList]) -> int | None:
        """The latest time this clock has been seen to pass: below it (less the skew allowance) it went back."""
        times = [s.issued_at for s in status.values()]
        if trust is not None:
            times.append(trust.issued_at)
        times += [t for t in (self.sync_state.floor, self._newest_verdict) if t is not None]
        return max(times, default=None)

    def _verdict(self, d: _Draft) -> Verdict:
        zh, en = self.policy.message(d.reason)
        elapsed = (time.perf_counter() - d.start) * 1000
        shown = {k: _printable(v) for k, v in (d.display or {}).items()}
        return Verdict(d.decision, d.reason, zh, en, shown, d.subject, d.issuer and _printable(d.issuer), elapsed)

    def _decide(self, text: str, start: float, at: int) -> _Draft:
        p = self.policy
        with self.store.lock:  # a consistent snapshot, never half a sync (adopt replaces, never mutates)
            trust, status, held = self.state.trust, self.state.status, self.state.held
        trust_held = held.get(TRUST)
        if trust is None or trust_held is None:
            return self._done(start, at, p.on_stale, VerdictReason.NO_TRUST_LIST)
        if clock_wrong(self.sync_state.clock, self._floor(trust, status), at, p.skew_s):
            return self._done(start, at, p.on_stale, VerdictReason.CLOCK_WRONG)
        if p.is_stale(trust_held, at):
            return self._done(start, at, p.on_stale, VerdictReason.STALE_LISTS)
        if not isinstance(text, str):
            return self._done(start, at, p.on_invalid, VerdictReason.NOT_A_CODE)
        try:
            verified = verify(text, trust.keyring, now=at, skew=p.skew_s)
        except CodeError as exc:
            return self._done(start, at, p.on_invalid, CORE_REASONS.get(exc.reason, VerdictReason.MALFORMED))
        claims = verified.claims
        subject, issuer = claims.subject.hex(), claims.issuer
        display = {"status": claims.status.name.lower(), "issuer": issuer, "code_type": claims.code_type.name.lower()}
        if claims.masked_name:
            display["masked_name"] = claims.masked_name
        if claims.masked_id:
            display["masked_id"] = claims.masked_id

        def done(decision: Decision, reason: VerdictReason) -> _Draft:
            return self._done(start, at, decision, reason, display, subject, issuer)

        if any(getattr(claims, f) is None for f in p.required_claims):
            return done(p.on_invalid, VerdictReason.MISSING_FIELDS)
        if p.max_code_age_s is not None and at - verified.issued_at > p.max_code_age_s:
            return done(p.on_invalid, VerdictReason.TOO_OLD)
        # Paper codes and device credentials live for months or a day: their status list is how a
        # revocation or a status change reaches the gate, so every one of them is checked against it.
        if claims.code_type is not CodeType.DYNAMIC or p.status_list == "always":
            lst, lst_held = status.get(issuer), held.get(status_name(issuer))
            if lst is None or lst_held is None:
                return done(p.on_stale, VerdictReason.NO_STATUS_LIST)
            if p.is_stale(lst_held, at):
                return done(p.on_stale, VerdictReason.STALE_LISTS)
            if claims.status_index is not None:
                entry = lst.status(claims.status_index)
                if entry is EntryStatus.INVALID:
                    return done(p.on_invalid, VerdictReason.REVOKED)
                if entry is EntryStatus.SUSPENDED:
                    return done(p.on_invalid, VerdictReason.SUSPENDED)
        colour = claims.status.name.lower()
        decision = p.statuses[colour]
        reason = {"green": VerdictReason.OK, "yellow": VerdictReason.STATUS_YELLOW, "red": VerdictReason.STATUS_RED}[
            colour
        ]
        draft = done(decision, reason)
        if decision is Decision.ALLOW and verified.credential_digest is not None and p.reentry_s > 0:
            # anti-passback: keyed on what the issuer signed, so each second's fresh presentation of one
            # phone credential is the same entry; held at least as long as the presentation lives
            until = max(at + p.reentry_s - 1, verified.expires_at + p.skew_s)  # held through ``until``
            return replace(draft, replay=(b"entry:" + verified.credential_digest[:16], until), refusal=PASSBACK)
        if decision is Decision.ALLOW and p.replay == "once":
            # keyed on the signed content, not the text: a re-encoded copy of a used code is still a replay
            return replace(draft, replay=(verified.digest[:16], verified.expires_at + p.skew_s))
        return draft

    @staticmethod
    def _done(
        start: float,
        at: int,
        decision: Decision,
        reason: VerdictReason,
        display: Mapping[str, str] | None = None,
        subject: str | None = None,
        issuer: str | None = None,
    ) -> _Draft:
        return _Draft(start, at, decision, reason, display, subject, issuer, None)

    # sync and health
    def sync(self, now: float | None = None) -> SyncReport:
        """Download lists and upload scan logs. Never raises for network trouble: see ``SyncReport``."""
        at = int(time.time() if now is None else now)
        report = SyncReport()
        with self._sync_lock:  # one sync at a time; verify is not blocked by the network
            if self._fetcher is None:
                self._fetcher = HttpxFetcher()
            base = sync_lists(self.state, self.store, self._fetcher, self.issuer_urls, at, report)
            if isinstance(self._fetcher, Poster):
                try:
                    api_key = kiosk_key(self._api_key_file)
                except UsageError as exc:
                    report.fail_upload(SyncReason.UPLOAD_NO_KEY, f"scan-log upload: {exc.detail}")
                else:
                    upload_scans(self.store, self._fetcher, base, self.kiosk_id, api_key, report)
            self.store.prune_replay(at - 3600)
            self.sync_state = self.sync_state.after(at, report, self.store.newest_verdict()[0])
            self.store.set_config(self.sync_state.config())
            if report.clock is not None:  # the issuers' time, just measured, supersedes the verdicts' times
                self._newest_verdict = None
        trust = self.state.trust
        report.trust_list_version = trust.version if trust else None
        report.status_lists = {i: s.version for i, s in self.state.status.items()}
        return report

    def health(self, now: float | None = None) -> Health:
        at = int(time.time() if now is None else now)
        p = self.policy
        with self.store.lock:
            trust, held, status = self.state.trust, self.state.held, self.state.status
        trust_held = held.get(TRUST)
        stale = trust is None or trust_held is None or p.is_stale(trust_held, at)
        lists = {}
        for issuer, lst in status.items():
            h = held[status_name(issuer)]
            lst_stale = p.is_stale(h, at)
            lists[issuer] = ListHealth(lst.version, at - h.checked_at, lst.expires_at - at, lst_stale)
            stale = stale or (lst_stale and p.status_list == "always")
        missing = tuple(i for i in trust.issuer_ids() if i not in status) if trust is not None else ()
        if p.status_list == "always":
            stale = stale or bool(missing)
        errors = self.sync_state.issuer_errors
        lists = {i: replace(h, error=errors.get(i)) for i, h in lists.items()}
        reading = self.sync_state.clock
        local = time.localtime(at)
        midnight = int(time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1)))
        today, pending, conflicts = self.store.counts(midnight)
        return Health(
            scenario=p.name,
            trust_list_version=trust.version if trust else None,
            trust_list_age_s=at - trust_held.checked_at if trust_held else None,
            stale=stale,
            offline=not self.sync_state.lists_ok,
            last_successful_sync=self.sync_state.last_successful,
            last_sync_attempt=self.sync_state.last_attempt,
            sync_age_s=at - last if (last := self.sync_state.last_successful) is not None else None,
            upload_error=self.sync_state.upload_error,
            status_lists=lists,
            scans_today=today,
            pending_uploads=pending,
            upload_conflicts=conflicts,
            missing_status_lists=missing,
            clock_skew_s=reading.skew_s if reading else None,
            clock_source=reading.source if reading else None,
            clock_checked_at=reading.measured_at if reading else None,
            clock_wrong=clock_wrong(reading, self._floor(trust, status), at, p.skew_s),
        )


def _printable(text: str) -> str:
    """``text`` with every control, bidi-override or separator character replaced by U+FFFD.

    The core already refuses such characters in signed fields; this keeps any that a future field or
    profile lets through off the screen.
    """
    if unprintable_character(text) is None:
        return text
    return "".join("\ufffd" if unprintable_character(c) else c for c in text)


@dataclass(frozen=True)
class _SyncState:
    """The outcome of past syncs, as kept in the state's config: the lists' and the upload's apart."""

    last_attempt: int | None = None
    last_successful: int | None = None
    lists_ok: bool = False  # the last list sync succeeded
    upload_error: str | None = None
    issuer_errors: Mapping[str, str] = field(default_factory=dict)  # the last sync's, per issuer
    clock: ClockReading | None = None  # the last reading (kept until a sync learns something new)
    floor: int | None = None  # the issuers' time at the last sync that measured this clock
    floor_seq: int = 0  # the scan log's last seq then: verdicts after it are floors too

    @classmethod
    def load(cls, cfg: Mapping[str, str]) -> _SyncState:
        def num(key: str) -> int | None:
            return int(cfg[key]) if cfg.get(key, "").isdigit() else None

        if "last_sync_attempt" not in cfg and "last_sync_at" in cfg:  # a state from an older version
            ok = cfg.get("last_sync_ok") == "1"
            return cls(num("last_sync_at"), num("last_sync_at") if ok else None, ok)
        return cls(
            num("last_sync_attempt"),
            num("last_successful_sync"),
            cfg.get("last_sync_lists_ok") == "1",
            cfg.get("last_upload_error") or None,
            _json_map(cfg.get("issuer_errors")),
            _clock_from(cfg),
            num("clock_floor"),
            num("clock_floor_seq") or 0,
        )

    def after(self, at: int, report: SyncReport, seq: int) -> _SyncState:
        """The state after a sync at ``at``; ``seq``: the scan log's last seq at that moment."""
        measured = report.clock is not None
        return _SyncState(
            at,
            at if report.lists_ok else self.last_successful,
            report.lists_ok,
            report.upload_error,
            dict(report.issuer_errors),
            report.clock or self.clock,
            issuer_time(report.clock) if report.clock is not None else self.floor,
            seq if measured else self.floor_seq,
        )

    def config(self) -> dict[str, str]:
        c = self.clock
        return {
            "last_sync_attempt": str(self.last_attempt or ""),
            "last_successful_sync": str(self.last_successful or ""),
            "last_sync_lists_ok": "1" if self.lists_ok else "0",
            "last_upload_error": self.upload_error or "",
            "issuer_errors": json.dumps(dict(self.issuer_errors), ensure_ascii=False),
            "clock_skew_s": "" if c is None else str(c.skew_s),
            "clock_source": "" if c is None else c.source,
            "clock_measured_at": "" if c is None else str(c.measured_at),
            "clock_floor": "" if self.floor is None else str(self.floor),
            "clock_floor_seq": str(self.floor_seq),
        }


def _json_map(text: str | None) -> dict[str, str]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _clock_from(cfg: Mapping[str, str]) -> ClockReading | None:
    try:
        return ClockReading(float(cfg["clock_skew_s"]), cfg["clock_source"], int(cfg["clock_measured_at"]))
    except (KeyError, ValueError):
        return None
