"""Group commit: deciding and appending batches of ticketed-event commands.

Each ticketed event has a lane (``domain.lanes``); a lane's leader hands its queued commands
to the batch runner: they are decided on one state and appended as one transaction during
the leader's turn on the event (``domain.ports.Turns``, implemented by the store adapters),
retried on fresh state after a conflict or a store error, and each caller is answered with
its own outcome. Every append also keeps the rule that a deleted account holds nothing
(``domain.closed_accounts``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import EventStore, IntegrityError, Mapper, OperationalError

from domain import closed_accounts
from domain.backoff import pause
from domain.errors import DomainError, EventNotFound, ServiceBusy
from domain.event import Event
from domain.lanes import Command, Lane, Lanes
from domain.ports import Turn, Turns
from domain.settings import ServiceSettings

log = logging.getLogger("ticketing.events")

Decided = list[tuple[Command, Any, BaseException | None]]
V = TypeVar("V")


class UnconfirmedAppend(Exception):
    """An append failed with a store error: it may have committed all the same (a lost
    acknowledgement). Keeps what was appended and decided, to check before deciding again."""

    def __init__(self, events: list[Any], decided: Decided) -> None:
        super().__init__("append not confirmed")
        self.events = events
        self.decided = decided

    def settle(self) -> None:
        for command, outcome, error in self.decided:
            command.settle(outcome, error)


class EventBatches:
    """The lanes of the service's ticketed events, and the runner of their batches."""

    def __init__(
        self,
        *,
        turns: Turns,
        mapper: Mapper[UUID],
        events: EventStore[UUID],
        snapshots: EventStore[UUID],
        find_event: Callable[[UUID], Event | None],
        announce: Callable[[], None],
        settings: ServiceSettings,
    ) -> None:
        self._turns = turns
        self._mapper = mapper
        self._events = events
        self._snapshots = snapshots
        self._find_event = find_event
        self._announce = announce
        self._settings = settings
        self.lanes: Lanes[Event] = Lanes(self._run_batch)

    def execute(
        self, event_id: UUID, decide: Callable[[Event], Any], actor: str | None = None
    ) -> Any:
        """Decide ``decide`` on the event in its lane's next batch; ``actor`` is the account
        the command presumes (a booking's holder), if any."""
        return self.lanes.execute(event_id, decide, actor)

    def create(self, event: Event, view: Callable[[Event], V]) -> V:
        """Append a new event's creation through a turn, so that it shares a transaction
        with the appends that are ready at the same moment, and keep the event in its lane:
        its first command in this process reads nothing. Returns ``view(event)``, taken
        before any command can change the event.

        Raises ``IntegrityError`` when the id is taken (the store holds that stream) and
        ``OperationalError`` when the append failed with a store error (it may have
        committed all the same: without a key a retry could not tell a lost answer from a
        lost write). A refusal of another member's append in the same group is retried.
        """
        appended = event.collect_events()
        stored = [self._mapper.to_stored_event(domain_event) for domain_event in appended]
        for attempt in range(self._settings.command_max_attempts):
            with self._turns.turn(event.id, since=None) as turn:
                if self._is_taken(event.id, turn):
                    raise IntegrityError(f"{event.id} is already stored")
                try:
                    result = turn.append(stored)
                except IntegrityError:  # its group's append was refused: look again, alone
                    self.lanes.stats.record_conflict()
                    result = None
            if result is not None:
                log_appended(appended, result.positions)
                answer = view(event)
                self.lanes.adopt(event.id, event)
                self._announce()
                return answer
            pause(attempt)
        raise ServiceBusy("The store is busy, please retry.")

    def _is_taken(self, aggregate_id: UUID, turn: Turn) -> bool:
        """Whether the store holds the stream, as the turn read it under the event's lock
        (or, where the turn reads nothing, as the store says)."""
        if turn.missing is None:
            return any(True for _ in self._events.get(aggregate_id, limit=1))
        return bool(turn.missing) or turn.snapshot is not None

    def _run_batch(self, lane: Lane[Event], commands: list[Command]) -> None:
        """Decide a batch on one state and append it as one transaction; retry on conflict.

        The lane caches committed state only: the aggregate leaves the lane while the batch is
        decided and appended and returns once the append succeeded, so no failure (a refused
        append, a lost connection, a bug) leaves phantom changes behind for the next batch.
        A version conflict (another process appended first) and a transient store error
        (SQLite's "database is locked", a PostgreSQL connection or lock timeout) are retried
        on freshly read state after a growing, jittered pause; once the budget is spent every
        caller gets ``ServiceBusy``. Any other error reaches the callers of the batch.
        """
        pending, compensating = list(commands), False
        while pending:  # a committed batch may call for compensations: a batch of their own
            follow_up = self._attempt_batch(lane, pending)
            if compensating and any(isinstance(c.error, ServiceBusy) for c in pending):
                closed_accounts.report_unreleased(lane.aggregate_id)
            pending, compensating = follow_up, True

    def _attempt_batch(self, lane: Lane[Event], pending: list[Command]) -> list[Command]:
        """Decide and append ``pending`` (retrying as above); returns follow-up commands."""
        unconfirmed: UnconfirmedAppend | None = None
        deadline = time.monotonic() + self._settings.command_deadline_seconds
        for attempt in range(self._settings.command_max_attempts):
            if attempt and time.monotonic() > deadline:
                break  # a client waiting longer would give up anyway: answer busy instead
            cached = lane.aggregate.version if lane.aggregate is not None else None
            try:
                with self._turns.turn(lane.aggregate_id, since=cached) as turn:
                    if unconfirmed is not None and self._was_stored(unconfirmed):
                        # The append whose commit we never heard back about did commit.
                        lane.aggregate = None
                        self._announce()
                        unconfirmed.settle()
                        return []
                    unconfirmed = None
                    follow_up = self._decide_and_append(lane, pending, turn)
                    if follow_up is not None:
                        return follow_up
            except UnconfirmedAppend as lost:
                unconfirmed = lost
                self.lanes.stats.record_store_error()
            except IntegrityError:
                self.lanes.stats.record_conflict()
            except OperationalError:
                self.lanes.stats.record_store_error()
            pause(attempt)  # outside the cross-process lock, so others can go meanwhile
        busy = ServiceBusy("The event is busy, please retry.")
        for command in pending:
            command.settle(error=busy)
        return []

    def _decide_and_append(
        self, lane: Lane[Event], pending: list[Command], turn: Turn
    ) -> list[Command] | None:
        """One attempt: decide every pending command on current state and append the lot.

        Returns the compensations the commit calls for (``closed_accounts.release``), or
        ``None`` when a command failed with a bug (it is settled with its error and removed
        from ``pending``) so the rest must be decided again on clean state. A refused
        append (``IntegrityError``) or a store error propagates to be retried; a store error
        during the append itself becomes ``UnconfirmedAppend``, because the commit may have
        happened with only its acknowledgement lost.
        """
        event = self._current(lane, turn)
        lane.aggregate = None
        decided: Decided = []
        for command in pending:
            try:
                decided.append((command, command.decide(event), None))
            except DomainError as error:  # refused before any change: state intact
                decided.append((command, None, error))
            except Exception as error:  # a bug mid-change: drop it, decide the rest again
                command.settle(error=error)
                pending.remove(command)
                return None
        previous_version = event.version - len(event.pending_events)
        appended = event.collect_events()
        deleted: set[str] = set()
        if appended:
            stored = [self._mapper.to_stored_event(domain_event) for domain_event in appended]
            bookers = [
                command.actor
                for command, _, error in decided
                if command.actor is not None and error is None
            ]
            try:
                result = turn.append(stored, watch=closed_accounts.watch(bookers))
            except OperationalError as error:
                raise UnconfirmedAppend(appended, decided) from error
            log_appended(appended, result.positions)
            if result.watched:  # rare: a booker's account was deleted meanwhile
                deleted = closed_accounts.deleted(bookers, result.watched)
        lane.aggregate = event
        for command, outcome, error in decided:  # answer first: a snapshot can take a while
            if command.actor in deleted and error is None:
                outcome, error = None, closed_accounts.refused()
            command.settle(outcome, error)
        if event.version > previous_version:
            self._after_commit(event, previous_version)
        return [Command(closed_accounts.release(account)) for account in sorted(deleted)]

    def _was_stored(self, unconfirmed: UnconfirmedAppend) -> bool:
        """Whether the store holds exactly the events of an append we never heard back on."""
        first, last = unconfirmed.events[0], unconfirmed.events[-1]
        stored = list(
            self._events.get(
                first.originator_id,
                gt=first.originator_version - 1,
                lte=last.originator_version,
            )
        )
        return [vars(e) for e in stored] == [vars(e) for e in unconfirmed.events]

    def _after_commit(self, event: Event, previous_version: int) -> None:
        """Snapshot and announce a committed batch. Never fails it: the append stands."""
        try:
            self._maybe_snapshot(event, previous_version)
        except Exception:
            log.warning(
                "snapshot of %s at version %s failed", event.id, event.version, exc_info=True
            )
        self._announce()

    def _current(self, lane: Lane[Event], turn: Turn) -> Event:
        """The lane's aggregate, fast-forwarded past anything other processes appended."""
        event = lane.aggregate
        if event is None:
            loaded = self._load(lane.aggregate_id, turn)
            if loaded is None:
                raise EventNotFound("No such event.")
            lane.aggregate = loaded
            return loaded
        if turn.missing is not None:  # the turn already read what was stored since
            for stored in turn.missing:
                self._mapper.to_domain_event(stored).mutate(event)
        else:
            for new_event in self._events.get(lane.aggregate_id, gt=event.version):
                new_event.mutate(event)
        return event

    def _load(self, aggregate_id: UUID, turn: Turn) -> Event | None:
        """The event as stored: built from what the turn read (the latest snapshot and the
        events after it, in the turn's first round trip) or, when the store could not read
        it cheaply, found through the library's repository."""
        if turn.missing is None:
            return self._find_event(aggregate_id)
        stored = turn.missing if turn.snapshot is None else [turn.snapshot, *turn.missing]
        aggregate: Any = None
        for record in stored:  # as the library's repository projects an aggregate
            aggregate = self._mapper.to_domain_event(record).mutate(aggregate)
        return aggregate if isinstance(aggregate, Event) else None

    def _maybe_snapshot(self, event: Event, previous_version: int) -> None:
        interval = self._settings.snapshot_interval
        if event.version // interval > previous_version // interval:
            self._snapshots.put([type(event).Snapshot.take(event)])


def log_appended(domain_events: list[Any], positions: Sequence[int]) -> None:
    """Log each appended domain event with its position in the store."""
    if not log.isEnabledFor(logging.INFO):
        return
    for domain_event, position in zip(domain_events, positions, strict=False):
        log.info(
            "domain event appended",
            extra={
                "event_type": type(domain_event).__name__,
                "aggregate_id": str(domain_event.originator_id),
                "version": domain_event.originator_version,
                "position": position,
            },
        )
