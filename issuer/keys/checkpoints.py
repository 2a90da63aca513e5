"""The audit chain anchored outside the database: signed checkpoints of its head (DESIGN §6).

The hash chain (audit.py) shows an edited or missing row only up to its end: whoever can write the
database can cut the newest rows (and reset the AUTOINCREMENT mark) or edit a row and recompute every
hash after it. A checkpoint (``suishenma.checkpoint``) is the issuer's signed statement "the log ended
at row N with hash H"; it lives in a file beside the database (``var/audit-checkpoint.cwt``, replaced
atomically, 0600) and at ``GET /v1/audit/checkpoint``, where monitors can keep copies. A database that
ends before N, or holds another hash at row N, fails ``audit verify``.

When checkpoints are written: at ``init`` and after every CLI command that opens the service, when the
server starts and stops, and while it serves every ``audit_checkpoint_s`` seconds (default 5) if the
log has grown. One writer at a time across every worker and node: a lease in the database (a serving
process keeps it while it lives; a command takes it only while it writes). The newest checkpoint is also
kept in the database, where every node serves it from (``GET /v1/audit/checkpoint`` answers the same on
every node), and each node copies it into its own file. Rows appended since the last checkpoint (at most
that long ago while serving) are not anchored yet. A checkpoint is never moved onto a database that
contradicts the one held, in the file or in the database: the writer refuses, logs why, and the evidence
stays.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from issuer.audit_chain import AuditReport, verify_chain
from issuer.errors import CheckpointRefused, Problem
from issuer.files import FILE_MODE, private_dir, write_private
from issuer.settings import Settings
from issuer.signing_times import AUDIT_CHECKPOINT, timed
from issuer.storage import Storage
from suishenma import (
    Checkpoint,
    KeyFileError,
    ListError,
    SigningKey,
    VerificationKey,
    load_verification_key,
    parse_checkpoint,
    sign_checkpoint,
)
from suishenma.checkpoint import MAX_CHECKPOINT_BYTES

log = logging.getLogger(__name__)


def issuer_public_keys(settings: Settings) -> dict[bytes, VerificationKey]:
    """Every issuer public key under keys/ (retired ones too), by kid: the keys a checkpoint may be
    signed with. Read from the files, not from the database whose log the checkpoint vouches for."""
    keys: dict[bytes, VerificationKey] = {}
    for path in sorted(settings.keys_path.glob("issuer-*.pub")):
        try:
            key = load_verification_key(path)
        except KeyFileError:  # an unreadable stray file must not hide the others
            log.warning("skipping unreadable public key %s", path.name)
            continue
        keys[key.kid] = key
    return keys


def read_checkpoint(path: Path, keys: dict[bytes, VerificationKey]) -> Checkpoint | None:
    """The checkpoint in ``path``, verified; None when there is no such file.

    Raises:
        ListError: TOO_LARGE, LIST_WRONG_SIGNER or LIST_MALFORMED (see ``parse_checkpoint``).
        OSError: the file exists but cannot be read.
    """
    data = _file_bytes(path)
    return None if data is None else parse_checkpoint(data, keys)


def disagreements(cp: Checkpoint, issuer_id: str, storage: Storage) -> list[str]:
    """Why the database cannot be the log ``cp`` vouches for (empty when it can)."""
    if cp.issuer != issuer_id:
        return [f"the checkpoint is for issuer {cp.issuer!r}, not {issuer_id!r}"]
    last, _ = storage.audit_head()
    if cp.seq > last:
        return [
            f"the database ends at row {last} but a checkpoint signed at {cp.issued_at} names row {cp.seq}:"
            " rows were deleted from the end"
        ]
    if cp.seq == 0:
        return []
    held = storage.audit_hash_at(cp.seq)
    if held is None:
        return [f"row {cp.seq}, the last one a checkpoint signed at {cp.issued_at} vouches for, is missing"]
    if held != cp.head_hex:
        return [f"row {cp.seq} hashes to {held}, not to {cp.head_hex} as checkpointed: the log was rewritten"]
    return []


@dataclass(frozen=True)
class AuditVerdict:
    chain: AuditReport
    checkpoint: Checkpoint | None
    problems: tuple[str, ...]  # the chain's and the checkpoint's

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_audit(settings: Settings, storage: Storage, checkpoint_file: Path | None = None) -> AuditVerdict:
    """Walk the chain and hold it against the checkpoint (``settings``' file unless another is given).

    A missing checkpoint is a problem too: the issuer writes one at ``init``, so its absence means it
    was removed, or the database was moved without it (copy it along, or pass the copy a monitor kept).
    """
    chain = verify_chain(storage.audit_rows(), storage.audit_high_water())
    problems = list(chain.problems)
    path = checkpoint_file or settings.audit_checkpoint_path
    cp = None
    try:
        cp = read_checkpoint(path, issuer_public_keys(settings))
    except ListError as exc:
        problems.append(f"checkpoint {path.name} is not trustworthy: {exc.reason.value}: {exc.detail}")
    except OSError as exc:
        problems.append(f"checkpoint {path.name} cannot be read: {exc.strerror}")
    else:
        if cp is None:
            problems.append(f"no checkpoint at {path}: nothing outside the database vouches for the end of the log")
        else:
            problems += disagreements(cp, settings.issuer_id, storage)
    try:
        shared = shared_checkpoint(settings, storage)
    except ListError as exc:
        problems.append(f"the checkpoint held in the database is not trustworthy: {exc.reason.value}: {exc.detail}")
    else:
        if shared is not None:
            problems += [p for p in disagreements(shared, settings.issuer_id, storage) if p not in problems]
            if cp is None or shared.seq > cp.seq:
                cp = shared
    return AuditVerdict(chain, cp, tuple(problems))


def shared_checkpoint(settings: Settings, storage: Storage) -> Checkpoint | None:
    """The checkpoint every node serves, from the database, verified; None when none is stored.

    Raises: ListError (see ``parse_checkpoint``).
    """
    body = storage.checkpoint_get(settings.issuer_id)
    return None if body is None else parse_checkpoint(body, issuer_public_keys(settings))


LEASE = "audit-checkpoint"
_Held = tuple[Checkpoint | None, bytes]


def _parsed(body: bytes | None, keys: dict[bytes, VerificationKey]) -> _Held:
    """Raises: ListError (see ``parse_checkpoint``)."""
    return (None, b"") if body is None else (parse_checkpoint(body, keys), body)


def _file_bytes(path: Path) -> bytes | None:
    """Raises: OSError when the file exists but cannot be read."""
    try:
        with path.open("rb") as f:
            return f.read(MAX_CHECKPOINT_BYTES + 1)
    except FileNotFoundError:
        return None


class Anchor:
    """Writes checkpoints of this issuer's audit head: one writer at a time across workers and nodes (a
    lease in the database), the file beside the database under a per-host file lock."""

    def __init__(self, settings: Settings, storage: Storage, signing_key: Callable[[], SigningKey]) -> None:
        self.settings = settings
        self.storage = storage
        self._signing_key = signing_key
        self._lock = threading.Lock()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    @property
    def path(self) -> Path:
        return self.settings.audit_checkpoint_path

    @property
    def lease_s(self) -> float:
        """How long a writer that stops renewing keeps the others waiting."""
        return max(3 * self.settings.audit_checkpoint_s, 10.0)

    def write(self, now: int, keep_lease: bool = False) -> Checkpoint | None:
        """Sign the current head, store it for every node and replace the checkpoint file; the held one when
        the log has not grown. While another process holds the writer's lease, sign nothing: the file gets
        the shared checkpoint, which is returned (None when none is stored yet). ``keep_lease``: a serving
        process keeps writing them; a command lets go at once.

        Raises:
            CheckpointRefused: a held checkpoint (the file's or the database's) does not verify, or the
                database contradicts it.
            NoSigningKey, KeyFileError: no usable signing key.
            StorageUnavailable: the database is unavailable.
            OSError: the file cannot be written.
        """
        keys = issuer_public_keys(self.settings)
        private_dir(self.path.parent)
        with self._lock, self._file_lock():
            local, shared = self._held(keys)
            for cp, _ in (local, shared):
                problems = disagreements(cp, self.settings.issuer_id, self.storage) if cp else []
                if problems:
                    raise CheckpointRefused(Problem.CHECKPOINT_CONTRADICTED, problems="; ".join(problems))
            if not self.storage.lease(LEASE, self.holder, now, self.lease_s):
                if shared[0] is not None and (local[0] is None or local[0].seq < shared[0].seq):
                    write_private(self.path, shared[1])  # another process writes them: follow the shared one
                    return shared[0]
                return local[0] or shared[0]
            try:
                return self._sign(now, local, shared)
            finally:
                if not keep_lease:
                    self.release(now)

    def release(self, now: int) -> None:
        """Let another process write checkpoints at once (a serving process, when it stops).

        Raises: StorageUnavailable.
        """
        self.storage.lease(LEASE, self.holder, now, -1.0)

    def _held(self, keys: dict[bytes, VerificationKey]) -> tuple[_Held, _Held]:
        """(checkpoint, body) of the file and of the database, each (None, b"") when there is none.

        Raises: CheckpointRefused (CHECKPOINT_DOES_NOT_VERIFY).
        """
        try:
            shared = self.storage.checkpoint_get(self.settings.issuer_id)
            return _parsed(_file_bytes(self.path), keys), _parsed(shared, keys)
        except ListError as exc:
            raise CheckpointRefused(
                Problem.CHECKPOINT_DOES_NOT_VERIFY, path=self.path, reason=exc.reason.value, why=exc.detail
            ) from None

    def _sign(self, now: int, local: _Held, shared: _Held) -> Checkpoint:
        seq, head = self.storage.audit_head()
        unchanged = [(cp, body) for cp, body in (local, shared) if cp is not None and cp.seq == seq]
        if unchanged:
            cp, body = unchanged[0]
        else:
            key = self._signing_key()
            with timed(AUDIT_CHECKPOINT):
                body = sign_checkpoint(self.settings.issuer_id, seq, bytes.fromhex(head), key, now=now)
            cp = Checkpoint(self.settings.issuer_id, seq, bytes.fromhex(head), now, key.kid)
        if shared[1] != body:
            self.storage.checkpoint_put(cp.issuer, cp.seq, body, cp.issued_at)
        if local[1] != body:
            write_private(self.path, body)
        return cp

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


class Ticker(threading.Thread):
    """Runs ``step`` at once, then every ``interval`` seconds, and once more when stopped. A failure is
    logged (once until it changes) and retried at the next tick, never raised: serving goes on."""

    def __init__(
        self,
        step: Callable[[], object],
        interval: float,
        name: str = "audit-checkpoint",
        what: str = "audit checkpoint",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.what = what
        self.step, self.interval = step, interval
        self.ticks = 0  # completed steps, for tests and metrics
        self.ticked = threading.Event()  # set after each step
        self._stop_event = threading.Event()
        self._last_error = ""

    def run(self) -> None:
        self._tick()
        while not self._stop_event.wait(self.interval):
            self._tick()
        self._tick()

    def _tick(self) -> None:
        try:
            self.step()
        except Exception as exc:  # logged, retried at the next tick
            text = f"{type(exc).__name__}: {exc}"
            if text != self._last_error:
                log.error("%s not written: %s", self.what, text)
                self._last_error = text
        else:
            self._last_error = ""
        self.ticks += 1
        self.ticked.set()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)
