"""Group commit of audited writes: concurrent requests of one process share one transaction, one hold of
the audit chain's lock, one chained append and one commit.

The first request to arrive when no group is open leads one: it opens the serial transaction (taking the
lock across processes) while others join. Members run their own statements in turn on the group's
connection, each after a savepoint of its own, so one that raises is undone alone and its caller gets its own error.
Their audit events are collected, not appended; when no member is left to run, the leader appends every
collected event to the chain at once and commits. A member's ``with`` block ends only after that commit:
whatever a caller answers, its rows are durable. A failed commit fails every member (nothing of the group was
written). Requests that arrive while a group commits form the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, Protocol

AuditEvent = tuple[int, str, str, str, dict[str, object]]  # (at, actor, action, target, detail)


class Tx(Protocol):
    """An open transaction, as ``sql_base.Tx`` (that module builds on this one)."""

    def execute(self, sql: str, params: Any = (), /) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[Any], /) -> object: ...


MAX_GROUP = 48  # members per group: bounds the time a group holds the chain's lock, and keeps PostgreSQL
# under its 64 cached subtransactions per transaction (a savepoint that writes is one)


class GroupTx:
    """The group's transaction as one member sees it: statements go to the shared connection, audit events
    to the member's own list (kept only if its savepoint is released)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.events: list[AuditEvent] = []

    def execute(self, sql: str, params: Any = (), /) -> Any:
        return self.tx.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any], /) -> object:
        return self.tx.executemany(sql, rows)


class _Group:
    def __init__(self) -> None:
        self.tx: Tx | None = None
        self.error: BaseException | None = None  # the group's: its transaction could not open or commit
        self.joined = self.finished = 0
        self.running = self.closed = self.ended = False
        self.events: list[AuditEvent] = []


class GroupCommit:
    """Serial write transactions of one storage object, committed in groups (see the module's docstring).

    ``begin`` opens the backend's serial transaction (committed when its block ends); ``append`` adds audit
    events to the chain inside it; ``undone`` is called whenever a member's or a group's writes are rolled
    back (caches of what was written must forget them)."""

    def __init__(
        self,
        begin: Callable[[], AbstractContextManager[Tx]],
        append: Callable[[Tx, list[AuditEvent]], None],
        undone: Callable[[], None],
        max_group: int = MAX_GROUP,
    ) -> None:
        self._begin, self._append, self._undone = begin, append, undone
        self.max_group = max_group
        self.groups = self.members = self.largest = 0  # for tests and metrics
        self._cv = threading.Condition()
        self._open: _Group | None = None

    @contextmanager
    def member(self) -> Iterator[GroupTx]:
        """One request's part of a group: its statements run in the block, which ends once they are committed.

        Raises: whatever the block raises (its writes undone); the backend's errors when the group's
        transaction cannot open or commit (nothing of the group written).
        """
        group, leading = self._join()
        stack = ExitStack()
        if leading:
            self._open_transaction(group, stack)
        own: BaseException | None = None
        try:
            tx = self._take_turn(group)
        except BaseException as exc:  # the group did not open, or broke before this turn: nothing done
            own = exc
        else:
            try:
                yield tx
            except BaseException as exc:
                own = exc
            self._end_turn(group, tx, own)
        if leading:
            self._commit(group, stack)
        with self._cv:
            while not group.ended:
                self._cv.wait()
        if own is not None:
            raise own
        if group.error is not None:
            raise group.error

    def _join(self) -> tuple[_Group, bool]:
        with self._cv:
            group = self._open
            leading = group is None or group.closed or group.joined >= self.max_group
            if leading:
                group = self._open = _Group()
            assert group is not None
            group.joined += 1
            if group.joined >= self.max_group:
                group.closed = True
            return group, leading

    def _open_transaction(self, group: _Group, stack: ExitStack) -> None:
        try:
            tx = stack.enter_context(self._begin())
        except BaseException as exc:
            with self._cv:
                group.error, group.closed = exc, True
                self._cv.notify_all()
            return
        with self._cv:
            group.tx = tx
            self._cv.notify_all()

    def _take_turn(self, group: _Group) -> GroupTx:
        with self._cv:
            while group.error is None and (group.tx is None or group.running):
                self._cv.wait()
            if group.error is not None:
                group.finished += 1
                self._cv.notify_all()
                raise group.error
            assert group.tx is not None
            group.running = True
            tx = GroupTx(group.tx)
        try:
            tx.execute("SAVEPOINT member")
        except BaseException as exc:
            self._fail(group, exc)
            raise
        return tx

    def _end_turn(self, group: _Group, tx: GroupTx, own: BaseException | None) -> None:
        try:
            if own is not None:
                # Savepoints are left in place, never released: a round trip saved per member, and the commit
                # ends them all; a rollback goes to the newest of the name, this member's.
                tx.execute("ROLLBACK TO SAVEPOINT member")
                self._undone()
        except BaseException as exc:  # the connection broke: the group cannot commit
            self._fail(group, exc)
            return
        with self._cv:
            if own is None:
                group.events += tx.events
            group.running = False
            group.finished += 1
            self._cv.notify_all()

    def _fail(self, group: _Group, exc: BaseException) -> None:
        with self._cv:
            group.error = group.error or exc
            group.running = False
            group.finished += 1
            self._cv.notify_all()

    def _commit(self, group: _Group, stack: ExitStack) -> None:
        with self._cv:
            while (group.finished < group.joined and group.error is None) or group.running:
                self._cv.wait()
            group.closed = True  # members still waiting for a turn after a failure learn it there
            if self._open is group:
                self._open = None
        try:
            if group.error is not None:
                raise group.error
            assert group.tx is not None
            self._append(group.tx, group.events)
        except BaseException as exc:
            try:
                stack.__exit__(type(exc), exc, exc.__traceback__)  # the rollback
            except BaseException as raised:  # the backend's own error for it (StorageUnavailable, ...)
                exc = raised
            group.error = exc
            self._undone()
        else:
            try:
                stack.close()  # the commit
            except BaseException as exc:
                group.error = exc
                self._undone()
        with self._cv:
            while group.finished < group.joined:  # members that learnt of a failure while waiting for a turn
                self._cv.wait()
            group.ended = True
            if group.error is None:
                self.groups += 1
                self.members += group.joined
                self.largest = max(self.largest, group.joined)
            self._cv.notify_all()
