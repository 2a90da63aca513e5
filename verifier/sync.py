"""Sync: fetch the trust list and every issuer's status list, check them, store them, upload scan logs.

IO lives here; the decisions are TrustState's. Nothing here raises for network trouble: the outcome
is a SyncReport, and the verifier keeps working on what it holds.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urljoin

from suishenma import ListError, NetworkError, SignedStatusList, SuishenmaError, TrustList

from .clock import ClockReading, ClockSample, estimate
from .fetch import Fetcher, Poster
from .status_sync import Renewal, entry_urls, renew, sample_of
from .store import Store
from .trust_state import TRUST, HeldList, TrustState, issuer_of, status_name

log = logging.getLogger(__name__)
MAX_TRUST_BYTES = 1 << 20
UPLOAD_BATCH = 500
MAX_PARALLEL = 4  # status lists fetched at once (one per region: Shanghai, Jiangsu, Zhejiang, Anhui)


class SyncReason(StrEnum):
    """Why part of a sync failed: a list refused by its checks (the core's reasons), a host that did not
    answer, or a scan-log upload the issuer did not take."""

    NETWORK = "network"  # a host did not answer, or not in time, or not with 200/304
    NO_ISSUER_ANSWERED = "no_issuer_answered"  # no mirror served the trust list
    TOO_LARGE = "too_large"
    LIST_MALFORMED = "list_malformed"
    LIST_WRONG_SIGNER = "list_wrong_signer"
    LIST_EXPIRED = "list_expired"
    LIST_ROLLBACK = "list_rollback"
    UPLOAD_NO_KEY = "upload_no_key"  # the kiosk's upload key cannot be read
    UPLOAD_FAILED = "upload_failed"  # the issuer did not answer the upload, or refused it
    UPLOAD_NOT_ACKNOWLEDGED = "upload_not_acknowledged"  # its reply does not account for every record
    UPLOAD_CONFLICTS = "upload_conflicts"  # it holds other records under some of this kiosk's numbers
    INTERNAL = "internal"  # the sync itself failed with an unexpected error (the log holds the traceback)

    @classmethod
    def of(cls, exc: SuishenmaError) -> SyncReason:
        """The sync reason of a list or network error (a list's own reason when it has one)."""
        return cls._value2member_map_.get(exc.reason.value, cls.LIST_MALFORMED)  # type: ignore[return-value]


@dataclass(frozen=True)
class SyncProblem:
    reason: SyncReason
    message: str  # for people: what failed, where, and the detail
    issuer: str | None = None  # the region whose status list it concerns, if one


@dataclass
class SyncReport:
    """What one sync did. ``ok`` is everything; ``lists_ok`` only the lists: a scan-log upload that fails
    (``upload_error``) leaves fresh lists fresh."""

    ok: bool = True
    lists_ok: bool = True
    upload_error: str | None = None
    errors: list[str] = field(default_factory=list)  # each problem's message
    problems: list[SyncProblem] = field(default_factory=list)
    trust_list_version: int | None = None
    status_lists: dict[str, int] = field(default_factory=dict)  # issuer -> version held after sync
    updated: list[str] = field(default_factory=list)  # lists replaced by newer versions
    uploaded: int = 0
    warnings: list[str] = field(default_factory=list)  # e.g. a mirror that did not answer
    issuer_errors: dict[str, str] = field(default_factory=dict)  # issuer -> why its status list was not renewed
    downloads: dict[str, str] = field(default_factory=dict)  # issuer -> "timestamp", "delta" or "full"
    clock: ClockReading | None = None  # what this sync learnt of the local clock (None: nothing)

    @property
    def reasons(self) -> list[SyncReason]:
        return [p.reason for p in self.problems]

    def fail(self, reason: SyncReason, message: str, issuer: str | None = None) -> None:
        """A list could not be fetched or was refused."""
        self.ok = self.lists_ok = False
        self._add(SyncProblem(reason, message, issuer))

    def fail_upload(self, reason: SyncReason, message: str) -> None:
        """Scan records could not be handed over (they stay pending or in conflict)."""
        self.ok = False
        self.upload_error = message
        self._add(SyncProblem(reason, message))

    def _add(self, problem: SyncProblem) -> None:
        self.problems.append(problem)
        self.errors.append(problem.message)
        log.warning("sync: %s", problem.message)


def sync_lists(state: TrustState, store: Store, fetcher: Fetcher, urls: list[str], now: int, report: SyncReport) -> str:
    """Fetch and install the lists; return the base URL that answered (for uploads).

    The trust list comes from the first mirror that answers. Each issuer's status list comes from where
    its trust-list entry says (relative to that mirror, or an absolute URL on that region's own issuer),
    all fetched together: one region that is down or slow costs its own list, never the others'.
    """
    base, trust, held_new, confirmed = "", None, [], {}
    clock: list[ClockSample] = []
    for url in urls:  # mirrors in order: the first that answers serves the trust list
        held = state.held.get(TRUST) if state.trust is not None else None
        try:
            trust_url = urljoin(url.rstrip("/") + "/", "v1/trust-list")
            result = fetcher.fetch(trust_url, held.etag if held else None, MAX_TRUST_BYTES)
        except NetworkError as exc:
            report.warnings.append(f"trust list from {url}: {exc.detail}")
            continue
        base = url
        if result.status == 304 and held is not None:
            confirmed[TRUST] = now
            trust = state.trust
            clock.append(sample_of(result, now, None))
        else:
            try:
                trust = state.check_trust_list(result.body, now)
            except ListError as exc:
                report.fail(SyncReason.of(exc), f"trust list from {url} rejected: {exc.reason.value}: {exc.detail}")
                trust = None
                continue
            if state.trust is None or trust.version != state.trust.version:
                report.updated.append(TRUST)
            held_new.append(HeldList(TRUST, trust.version, result.body, result.etag, now, trust.expires_at))
            confirmed[TRUST] = now
            clock.append(sample_of(result, now, trust.issued_at))
        break
    if not base:
        report.fail(SyncReason.NO_ISSUER_ANSWERED, "no issuer answered: " + "; ".join(report.warnings))
    if trust is None:
        trust = state.trust  # keep working on what we hold
        if trust is None:
            return base
    fresh_trust = trust if held_new else None
    statuses: dict[str, SignedStatusList] = {}
    for renewal in _renew_status_lists(state, fetcher, trust, base, now):
        issuer, name = renewal.issuer, status_name(renewal.issuer)
        clock += renewal.samples
        for note in renewal.notes:
            report.warnings.append(f"status list of {issuer}: {note}")
        if renewal.error is not None:  # a network failure or a list that failed the checks
            err = renewal.error
            report.fail(SyncReason.of(err), f"status list of {issuer}: {err.reason.value}: {err.detail}", issuer)
            report.issuer_errors[issuer] = f"{err.reason.value}: {err.detail}"
            continue
        if renewal.confirmed_at is not None:
            confirmed[name] = renewal.confirmed_at
        if renewal.lst is None or renewal.held is None:
            continue
        statuses[issuer] = renewal.lst
        if issuer not in state.status or state.status[issuer].version != renewal.lst.version:
            report.updated.append(name)
        report.downloads[issuer] = renewal.downloaded
        held_new.append(renewal.held)
    report.clock = estimate(clock)
    dropped = []
    if fresh_trust is not None:  # issuers no longer trusted: forget their lists (their versions are kept)
        dropped = [n for n in state.held if n != TRUST and issuer_of(n) not in fresh_trust.issuer_ids()]
    with store.lock:  # stored and installed together: verify never sees half a sync
        store.save_lists(held_new, confirmed)
        for name in dropped:
            store.drop_list_body(name)
        state.adopt(fresh_trust, statuses, held_new, confirmed, dropped)
    return base


def _renew_status_lists(state: TrustState, fetcher: Fetcher, trust: TrustList, base: str, now: int) -> list[Renewal]:
    """Every issuer's status list renewed in parallel (status_sync.renew).

    A relative ``status_uri`` needs a mirror that answered; an absolute one (a region's own issuer) is
    fetched even when none did. Nothing is trusted here: each list, timestamp and delta is checked against
    the keys the trust list gives that issuer, whatever host served it.
    """
    jobs = [(issuer, urls) for issuer in trust.issuer_ids() if (urls := entry_urls(trust, issuer, base)) is not None]

    def run(job: tuple[str, tuple[str, str | None]]) -> Renewal:
        issuer, (status_url, stamp_url) = job
        return renew(state, fetcher, trust, issuer, status_url, stamp_url, now)

    if len(jobs) <= 1:
        return [run(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs)), thread_name_prefix="sync") as pool:
        return list(pool.map(run, jobs))


def upload_scans(
    store: Store, poster: Poster, base: str, kiosk_id: str, api_key: str | None, report: SyncReport
) -> None:
    """Send pending records in batches; mark them uploaded only once the issuer has acknowledged them."""
    if not base or not api_key:
        return
    while True:
        rows = store.pending(UPLOAD_BATCH)
        if not rows:
            return
        body = {
            "kiosk_id": kiosk_id,
            "records": [
                {
                    "seq": r.seq,
                    "at": r.at,
                    "scenario": r.scenario[:32],
                    "decision": r.decision,
                    "reason": r.reason,
                    "subject": r.subject,
                    "issuer": r.issuer,
                }
                for r in rows
            ],
        }
        try:
            reply = poster.post_json(urljoin(base.rstrip("/") + "/", "v1/scan-logs"), body, api_key)
        except NetworkError as exc:
            report.fail_upload(SyncReason.UPLOAD_FAILED, f"scan-log upload: {exc.detail}")
            return
        conflicts = _acknowledged(reply, {r.seq for r in rows})
        if conflicts is None:  # only what the issuer says it holds counts as uploaded
            report.fail_upload(
                SyncReason.UPLOAD_NOT_ACKNOWLEDGED,
                f"scan-log upload: the issuer did not acknowledge all {len(rows)} records: {reply!r:.200}",
            )
            return
        store.mark_uploaded(rows[-1].seq, rows[0].seq, conflicts)
        report.uploaded += len(rows) - len(conflicts)
        if conflicts:
            seqs = ", ".join(str(s) for s in sorted(conflicts)[:5])
            report.fail_upload(
                SyncReason.UPLOAD_CONFLICTS,
                f"scan-log upload: the issuer holds other records under {len(conflicts)} of this kiosk's sequence"
                f" numbers ({seqs}{', ...' if len(conflicts) > 5 else ''}); they are kept here, marked as conflicts",
            )


def _acknowledged(reply: object, sent: set[int]) -> set[int] | None:
    """The seqs the issuer refused as conflicts, or None when the reply does not account for every record.

    The reply is ``{"accepted": n, "duplicates": n, "conflicts": [seq, ...]}``; an issuer that predates
    conflicts leaves the list out.
    """
    if not isinstance(reply, dict):
        return None
    accepted, duplicates, conflicts = reply.get("accepted"), reply.get("duplicates"), reply.get("conflicts", [])
    if not (isinstance(accepted, int) and isinstance(duplicates, int) and isinstance(conflicts, list)):
        return None
    refused = {c for c in conflicts if type(c) is int}
    if len(refused) != len(conflicts) or not refused <= sent or accepted + duplicates + len(refused) != len(sent):
        return None
    return refused
