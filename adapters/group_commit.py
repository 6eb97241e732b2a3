"""Store-wide group commit: turns on different events that are ready together share one
transaction.

Lanes batch one event's commands; this batches the lane leaders of different events. Each
``turn`` takes a seat. The thread whose seat opens a group takes every seat queued at that
moment (at most one per event, and a seat that must go alone stays for a group of its
own), begins the group's transaction for all of them, and lets each seat's thread decide
its own event's commands on its own state. Each leader then deposits its batch; the last
one to deposit (or to leave without appending) commits the whole group, so no thread
stands by to do it. At most ``max_groups`` groups are in flight: the thread that ends a
group hands the next one to the longest waiting seat, as a lane hands leadership on.

A lone seat with nothing in flight opens a group of one at once, so a single hot event
pays only this bookkeeping. The driver side (what beginning and committing a group sends)
is the store adapter's: ``Transactions``.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.ports import Appended, Turn, Watch

MAX_GROUPS = 2  # one group's commit overlaps the next one's begin and decisions
MAX_GROUP = 32


class Seat:
    """One lane leader's turn on its event, inside a group."""

    __slots__ = (
        "aggregate_id",
        "since",
        "alone",
        "missing",
        "snapshot",
        "batch",
        "watch",
        "appended",
        "error",
        "opens",
        "finished",
        "group",
        "ready",
        "done",
    )

    def __init__(self, aggregate_id: UUID, since: int | None) -> None:
        self.aggregate_id = aggregate_id
        self.since = since
        self.alone = False  # its last group was refused: it goes in a group of its own
        self.missing: list[StoredEvent] | None = None
        self.snapshot: StoredEvent | None = None
        self.batch: list[StoredEvent] | None = None
        self.watch: Watch | None = None
        self.appended: Appended | None = None
        self.error: BaseException | None = None
        self.opens = False
        self.finished = False
        self.group: Group | None = None
        # One-shot latches, held until released by the thread that fills the seat in.
        self.ready = threading.Lock()
        self.done = threading.Lock()

    @property
    def key(self) -> int:
        """The event's lock key: the first 8 bytes of its id."""
        return int.from_bytes(self.aggregate_id.bytes[:8], "big", signed=True)

    def fail(self, error: BaseException) -> None:
        # Every seat raises its own instance: one exception raised in several threads at once
        # would collect all their tracebacks.
        try:
            own = type(error)(*error.args)
        except Exception:
            own = RuntimeError(str(error))
        own.__cause__ = error
        self.error = own


@dataclass(eq=False)
class Group:
    seats: list[Seat]
    unfinished: int
    handle: Any = None  # the driver's, between begin and commit (a connection)


class Transactions(Protocol):
    """What beginning and committing a group sends to the store."""

    def begin(self, seats: list[Seat]) -> Any:
        """Start the group's transaction, holding every seat's event, and set each seat's
        ``missing`` (and, for a seat with nothing cached, its ``snapshot``; see
        ``domain.ports.Turn``); returns the handle ``commit`` gets. Raises the store's
        exception."""

    def commit(self, handle: Any, seats: list[Seat], deposited: list[Seat]) -> None:
        """Append the deposited seats' batches as one commit (or end the transaction if
        none deposited) and give each deposited seat its ``appended`` or its ``error``.
        Always ends the transaction and lets go of the handle; never raises."""


@dataclass
class GroupStats:
    """Counters of one combiner (the groups of one process)."""

    groups: int = 0
    seats: int = 0
    largest: int = 0
    refused: int = 0  # groups whose commit was refused (``IntegrityError``)


class AppendCombiner:
    """Turns of one process on any events, combined into groups as described above."""

    def __init__(
        self,
        transactions: Transactions,
        max_groups: int = MAX_GROUPS,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._transactions = transactions
        self._max_groups = max_groups
        self._max_group = max_group
        self._mutex = threading.Lock()
        self._queue: deque[Seat] = deque()
        self._in_flight = 0
        self._alone_next: set[UUID] = set()
        self.stats = GroupStats()

    @property
    def waiting(self) -> int:
        """Seats waiting for a group to open."""
        return len(self._queue)

    def turn(self, aggregate_id: UUID, since: int | None) -> AbstractContextManager[Turn]:
        return _Turning(self, Seat(aggregate_id, since))

    def _take_seat(self, seat: Seat) -> Turn:
        seat.ready.acquire()
        seat.done.acquire()
        with self._mutex:
            if seat.aggregate_id in self._alone_next:
                self._alone_next.discard(seat.aggregate_id)
                seat.alone = True
            self._queue.append(seat)
            self._dispatch()
        seat.ready.acquire()
        if seat.opens:
            self._open(seat)
        if seat.error is not None:
            raise seat.error

        def append(stored: list[StoredEvent], watch: Watch | None = None) -> Appended:
            if seat.finished:
                raise RuntimeError("A turn ends in at most one append.")
            seat.batch, seat.watch = stored, watch
            self._finish(seat)
            seat.done.acquire()
            if seat.error is not None:
                raise seat.error
            return seat.appended

        return Turn(seat.missing, append, seat.snapshot)

    def _dispatch(self) -> None:
        """Under the mutex: let the longest waiting seats open groups while there is room."""
        while self._queue and self._in_flight < self._max_groups:
            opener = self._queue.popleft()
            opener.opens = True
            self._in_flight += 1
            opener.ready.release()

    def _open(self, opener: Seat) -> None:
        """Take the queued seats that may join, and begin the group's transaction."""
        with self._mutex:
            seats = [opener]
            if not opener.alone:
                events = {opener.aggregate_id}
                passed_over: list[Seat] = []
                while self._queue and len(seats) < self._max_group:
                    seat = self._queue.popleft()
                    # Two seats of one event (two lanes, after an eviction) would both append
                    # its next version; one goes in a later group.
                    if seat.alone or seat.aggregate_id in events:
                        passed_over.append(seat)
                    else:
                        seats.append(seat)
                        events.add(seat.aggregate_id)
                self._queue.extendleft(reversed(passed_over))
            group = Group(seats, unfinished=len(seats))
            for seat in seats:
                seat.group = group
            self.stats.groups += 1
            self.stats.seats += len(seats)
            self.stats.largest = max(self.stats.largest, len(seats))
        try:
            group.handle = self._transactions.begin(seats)
        except Exception as error:
            for seat in seats:
                seat.fail(error)
                seat.finished = True
            self._end()
        for seat in seats[1:]:
            seat.ready.release()

    def _finish(self, seat: Seat) -> None:
        """The seat deposited its batch or left; the last of its group commits the group."""
        group = seat.group
        assert group is not None
        with self._mutex:
            seat.finished = True
            group.unfinished -= 1
            last = group.unfinished == 0
        if last:
            self._commit(group)

    def _commit(self, group: Group) -> None:
        deposited = [seat for seat in group.seats if seat.batch is not None]
        self._transactions.commit(group.handle, group.seats, deposited)
        if len(group.seats) > 1 and any(isinstance(s.error, IntegrityError) for s in deposited):
            # Nothing of the group was stored. Each of its events tries again in a group of
            # its own, so a member whose append is refused cannot keep refusing the others'.
            with self._mutex:
                self.stats.refused += 1
                self._alone_next.update(seat.aggregate_id for seat in group.seats)
        self._end()
        for seat in deposited:
            seat.done.release()

    def _end(self) -> None:
        with self._mutex:
            self._in_flight -= 1
            self._dispatch()


class _Turning:
    """The context of one turn: a seat taken on entry, left (if it never appended) on exit."""

    __slots__ = ("_combiner", "_seat")

    def __init__(self, combiner: AppendCombiner, seat: Seat) -> None:
        self._combiner, self._seat = combiner, seat

    def __enter__(self) -> Turn:
        return self._combiner._take_seat(self._seat)

    def __exit__(self, *exc_info: object) -> None:
        if not self._seat.finished:  # left without appending: the group goes on without it
            self._combiner._finish(self._seat)
