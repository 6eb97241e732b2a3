"""Deciding and appending batches of ticketed-event commands: a mixin of ``TicketingService``.

A lane's leader (``domain.lanes``) hands its queued commands to ``_run_batch``: they are
decided on one state and appended as one transaction during the leader's turn on the event
(the store adapters (``adapters``)), retried on fresh state after a conflict or a store error, and
each caller is answered with its own outcome. The mixin relies on the host's ``lanes``,
``turns``, ``mapper``, ``events``, ``snapshots``, retry settings and ``_find_event``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, OperationalError

from domain.errors import DomainError, EventNotFound, ServiceBusy, UserNotFound
from domain.event import Event
from domain.lanes import Command, Lane
from domain.ports import Turn, Watch
from domain.user import User

log = logging.getLogger("ticketing.events")


class UnconfirmedAppend(Exception):
    """An append failed with a store error: it may have committed all the same (a lost
    acknowledgement). Keeps what was appended and decided, to check before deciding again."""

    def __init__(
        self, events: list[Any], decided: list[tuple[Command, Any, BaseException | None]]
    ) -> None:
        super().__init__("append not confirmed")
        self.events = events
        self.decided = decided

    def settle(self) -> None:
        for command, outcome, error in self.decided:
            command.settle(outcome, error)


class EventBatches:
    """The batch machinery behind ``TicketingService``'s event commands."""

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
                # Nobody waits on a compensation: say so where operators look.
                log.error(
                    "event %s: releasing a deleted account's holding failed; cancel it by hand",
                    lane.aggregate_id,
                )
            pending, compensating = follow_up, True

    def _attempt_batch(self, lane: Lane[Event], pending: list[Command]) -> list[Command]:
        """Decide and append ``pending`` (retrying as above); returns follow-up commands."""
        unconfirmed: UnconfirmedAppend | None = None
        deadline = time.monotonic() + self.command_deadline
        for attempt in range(self.max_attempts):
            if attempt and time.monotonic() > deadline:
                break  # a client waiting longer would give up anyway: answer busy instead
            cached = lane.aggregate.version if lane.aggregate is not None else None
            try:
                with self.turns.turn(lane.aggregate_id, since=cached) as turn:
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
            self._pause(attempt)  # outside the cross-process lock, so others can go meanwhile
        busy = ServiceBusy("The event is busy, please retry.")
        for command in pending:
            command.settle(error=busy)
        return []

    def _decide_and_append(
        self, lane: Lane[Event], pending: list[Command], turn: Turn
    ) -> list[Command] | None:
        """One attempt: decide every pending command on current state and append the lot.

        Returns the compensations the commit calls for (see ``_release_for_closed_account``),
        or ``None``
        when a command failed with a bug (it is settled with its error and removed from
        ``pending``) so the rest must be decided again on clean state. A refused
        append (``IntegrityError``) or a store error propagates to be retried; a store error
        during the append itself becomes ``UnconfirmedAppend``, because the commit may have
        happened with only its acknowledgement lost.
        """
        event = self._current(lane, turn)
        lane.aggregate = None
        decided: list[tuple[Command, Any, BaseException | None]] = []
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
        closed: set[str] = set()
        if appended:
            stored = [self.mapper.to_stored_event(domain_event) for domain_event in appended]
            try:
                result = turn.append(stored, watch=_account_watch(decided))
            except OperationalError as error:
                raise UnconfirmedAppend(appended, decided) from error
            log_appended(appended, result.positions)
            if result.watched:  # rare: a booker's account was deleted meanwhile
                closed = {
                    command.actor
                    for command, _, _ in decided
                    if command.actor is not None and _account_id(command.actor) in result.watched
                }
        lane.aggregate = event
        for command, outcome, error in decided:  # answer first: a snapshot can take a while
            if command.actor in closed and error is None:
                outcome, error = None, UserNotFound("This account has been deleted.")
            command.settle(outcome, error)
        if event.version > previous_version:
            self._after_commit(event, previous_version)
        return [self._release_for_closed_account(account) for account in sorted(closed)]

    @staticmethod
    def _release_for_closed_account(user_id: str) -> Command:
        """A booking that committed after its account was deleted is given back at once.

        Account deletion cancels what the account holds, then deletes it; a booking already
        past its token check can still commit after that. Each batch looks, as it commits,
        for bookers whose account is deleted (``_account_watch``); what such a booking took
        is released here, and the freed seats go to the queue as with any cancellation.
        """

        def release(event: Event) -> None:
            if user_id in event.holders:
                event.cancel(user_id, user_id=user_id)

        return Command(release)

    def _was_stored(self, unconfirmed: UnconfirmedAppend) -> bool:
        """Whether the store holds exactly the events of an append we never heard back on."""
        first, last = unconfirmed.events[0], unconfirmed.events[-1]
        stored = list(
            self.events.get(
                first.originator_id,
                gt=first.originator_version - 1,
                lte=last.originator_version,
            )
        )
        return [vars(e) for e in stored] == [vars(e) for e in unconfirmed.events]

    @staticmethod
    def _pause(attempt: int) -> None:
        """Jittered exponential back-off, so that racing processes stop meeting in step."""
        time.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))

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
            loaded = self._find_event(lane.aggregate_id)
            if loaded is None:
                raise EventNotFound("No such event.")
            lane.aggregate = loaded
            return loaded
        if turn.missing is not None:  # the turn already read what was stored since
            for stored in turn.missing:
                self.mapper.to_domain_event(stored).mutate(event)
        else:
            for new_event in self.events.get(lane.aggregate_id, gt=event.version):
                new_event.mutate(event)
        return event

    def _maybe_snapshot(self, event: Event, previous_version: int) -> None:
        if event.version // self.snapshot_interval > previous_version // self.snapshot_interval:
            self.snapshots.put([type(event).Snapshot.take(event)])


def _account_id(actor: str) -> UUID | None:
    try:
        return UUID(actor)
    except ValueError:
        return None  # not an account id (callers of the service may name users freely)


def _account_watch(decided: list[tuple[Command, Any, BaseException | None]]) -> Watch | None:
    """The accounts whose bookings in this batch took effect, to check for deletion."""
    accounts = {
        account
        for command, _, error in decided
        if command.actor is not None and error is None
        if (account := _account_id(command.actor)) is not None
    }
    return Watch(sorted(accounts), User.Deleted.TOPIC) if accounts else None


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
