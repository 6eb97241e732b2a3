"""Group commit: one lane per ticketed event, one writer at a time, commands decided in batches.

Commands for the same event that arrive while an append is in flight queue up in the event's
lane. The thread at the head of the queue becomes the leader: it fast-forwards the lane's
cached aggregate, decides every queued command on that one state (each command either adds
pending domain events or raises its own domain error), appends all the pending events in one
transaction, and hands each caller its own outcome. Threads of one process never fight each
other for a version; processes that share a store meet on the store's optimistic version
check, and the loser reloads incrementally and decides its batch again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

A = TypeVar("A")
MAX_BATCH = 512
# Bookings spread over more events than this thrash the lanes' cache (each one a load of its
# event from the store); a lane of a small event costs some kilobytes.
MAX_LANES = 10_000


@dataclass
class Command:
    """A queued command: ``decide`` runs against the aggregate and returns the outcome."""

    decide: Callable[[Any], Any]
    # The account the command presumes (a booking's holder): if that account turns out to
    # have been deleted when the batch commits, the command's effects are compensated.
    actor: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Any = None
    error: BaseException | None = None
    is_leader: bool = False
    settled: bool = False

    def settle(self, outcome: Any = None, error: BaseException | None = None) -> None:
        self.outcome, self.error, self.settled = outcome, error, True
        self.done.set()

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.outcome


@dataclass
class BatchStats:
    """Counters of one process's lanes (leaders of different lanes update them concurrently)."""

    batches: int = 0
    commands: int = 0
    conflicts: int = 0
    store_errors: int = 0
    largest_batch: int = 0
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, size: int) -> None:
        with self._mutex:
            self.batches += 1
            self.commands += size
            self.largest_batch = max(self.largest_batch, size)

    def record_conflict(self) -> None:
        """Another writer appended first: the batch is decided again on fresh state."""
        with self._mutex:
            self.conflicts += 1

    def record_store_error(self) -> None:
        """A transient store error (lock or connection timeout) made the append fail."""
        with self._mutex:
            self.store_errors += 1


class Lane(Generic[A]):
    def __init__(self, aggregate_id: UUID) -> None:
        self.aggregate_id = aggregate_id
        self.mutex = threading.Lock()
        self.queue: list[Command] = []
        self.busy = False
        self.aggregate: A | None = None


class Lanes(Generic[A]):
    """Serialises and batches commands per aggregate id.

    ``run_batch(lane, commands)`` is supplied by the application service: it decides and
    appends one batch, settling every command in it, and keeps ``lane.aggregate`` current.
    """

    def __init__(
        self, run_batch: Callable[[Lane[A], list[Command]], None], max_lanes: int = MAX_LANES
    ) -> None:
        self._run_batch = run_batch
        # Least recently used first: a long-lived worker keeps the events in play, not every
        # event it ever touched (nor a lane per unknown id someone tried).
        self._lanes: OrderedDict[UUID, Lane[A]] = OrderedDict()
        self._lanes_mutex = threading.Lock()
        self.max_lanes = max_lanes
        self.stats = BatchStats()

    def lane(self, aggregate_id: UUID) -> Lane[A]:
        with self._lanes_mutex:
            lane = self._lanes.get(aggregate_id)
            if lane is None:
                lane = self._lanes[aggregate_id] = Lane(aggregate_id)
                self._evict_idle(keep=aggregate_id)
            else:
                self._lanes.move_to_end(aggregate_id)
            return lane

    def _evict_idle(self, keep: UUID) -> None:
        """Drop the least recently used idle lanes beyond ``max_lanes``. A lane handed out
        just before its eviction still works: the store's version check (and, across
        processes, the event lock) keeps two lanes for one event correct, only slower.

        Only the oldest lanes are looked at, as many as must go: a lane in use there moves
        to the end (it is in use, so recently used), so each new lane costs a few steps,
        not a pass over every lane."""
        excess = len(self._lanes) - self.max_lanes
        looked_at = 0
        while excess > 0 and looked_at < len(self._lanes):
            aggregate_id, candidate = self._lanes.popitem(last=False)
            looked_at += 1
            if aggregate_id == keep or candidate.busy or candidate.queue:
                self._lanes[aggregate_id] = candidate
            else:
                excess -= 1

    def adopt(self, aggregate_id: UUID, aggregate: A) -> None:
        """Cache a committed aggregate that this process made (a new one), unless its lane
        holds one already or a leader is at work on it (which then reads the store)."""
        lane = self.lane(aggregate_id)
        with lane.mutex:
            if not lane.busy and lane.aggregate is None:
                lane.aggregate = aggregate

    def __len__(self) -> int:
        return len(self._lanes)

    def execute(
        self, aggregate_id: UUID, decide: Callable[[A], Any], actor: str | None = None
    ) -> Any:
        lane = self.lane(aggregate_id)
        command = Command(decide, actor)
        with lane.mutex:
            lane.queue.append(command)
            if not lane.busy:
                lane.busy = True
                command.is_leader = True
        if not command.is_leader:
            command.done.wait()
            if not command.is_leader:
                return command.result()
        self._lead(lane)
        return command.result()

    def _lead(self, lane: Lane[A]) -> None:
        with lane.mutex:
            batch = lane.queue[:MAX_BATCH]
            del lane.queue[:MAX_BATCH]
        try:
            self.stats.record(len(batch))
            self._run_batch(lane, batch)
        except Exception as error:  # settle everyone: no caller may wait forever
            for command in batch:
                if not command.settled:
                    command.settle(error=error)
        else:
            for command in batch:
                if not command.settled:  # a batch runner bug must not pass for "no outcome"
                    command.settle(error=RuntimeError("The command's batch gave it no outcome."))
        finally:
            with lane.mutex:
                if lane.queue:
                    successor = lane.queue[0]
                    successor.is_leader = True
                    successor.done.set()
                else:
                    lane.busy = False
