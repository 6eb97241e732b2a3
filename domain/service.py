"""The application service: one method per command, the only place that loads and saves.

Ticketed-event commands go through per-event lanes (``domain.lanes``) so that commands of
one process never fight over a version and are appended in batches. User commands are rare;
they live in ``domain.accounts`` (a mixin of this service: one application, one store).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, OperationalError

from domain.accounts import AccountCommands
from domain.errors import (
    BookingNotFound,
    DomainError,
    EventNotFound,
    InvalidCommand,
    ServiceBusy,
    UserNotFound,
)
from domain.event import (
    BookingOutcome,
    CancelOutcome,
    Event,
    Idempotency,
    parse_entry_id,
)
from domain.lanes import Command, Lane, Lanes
from domain.passwords import Passwords
from domain.persistence import PostgresTurns, RecorderTurns, Turn, Watch
from domain.user import User

log = logging.getLogger("ticketing.events")

IDEMPOTENT_CREATE_NAMESPACE = UUID("6f1c9a44-3f7e-4c55-9d0e-0a2b7c1e5d11")


@dataclass(frozen=True)
class EventView:
    """The write model's own view of an event, as of the version just committed."""

    id: str
    name: str
    total_tickets: int
    available_tickets: int
    booked_tickets: int
    waiting_list_count: int
    max_tickets_per_user: int
    organizer_id: str
    closed: bool
    created_at: datetime
    version: int

    @classmethod
    def of(cls, event: Event) -> EventView:
        return cls(
            id=str(event.id),
            name=event.name,
            total_tickets=event.total_tickets,
            available_tickets=event.available,
            booked_tickets=event.booked,
            waiting_list_count=len(event.waitlist),
            max_tickets_per_user=event.max_tickets_per_user,
            organizer_id=event.organizer_id,
            closed=event.closed,
            created_at=event.created_on,
            version=event.version,
        )


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


class TicketingService(AccountCommands, Application[UUID]):
    """Use cases of the booking service."""

    name = "ticketing"
    is_snapshotting_enabled = True

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self.max_attempts = int(self.env.get("COMMAND_MAX_ATTEMPTS") or 20)
        # Retries stop after this long even with attempts left: while the store restarts,
        # pools wait for connections and twenty attempts could keep a caller for a minute.
        self.command_deadline = float(self.env.get("COMMAND_DEADLINE_SECONDS") or 4)
        # A snapshot of an on-sale's state (30,000 holders) takes ~70 ms to encode and store,
        # inside the lane; every 10,000 events keeps that off the p99 while a cold load
        # still replays at most 10,000 events after the snapshot (~0.2 s).
        self.snapshot_interval = int(self.env.get("SNAPSHOT_INTERVAL") or 10_000)
        self.passwords = Passwords(
            time_cost=int(self.env.get("ARGON2_TIME_COST") or 3),
            memory_cost=int(self.env.get("ARGON2_MEMORY_COST") or 65536),
        )
        self.lanes: Lanes[Event] = Lanes(self._run_batch)
        self.after_append: list[Callable[[], None]] = []
        self.turns: PostgresTurns | RecorderTurns = RecorderTurns(self.recorder)

    def close(self) -> None:
        self.turns.close()
        super().close()

    # ================================================================ events
    def create_event(
        self,
        organizer_id: str,
        name: str,
        total_tickets: int,
        max_tickets_per_user: int = 1,
        idempotency: Idempotency | None = None,
    ) -> EventView:
        Event.validate_new(name, total_tickets, max_tickets_per_user)
        event_id = uuid4()
        if idempotency is not None:
            # A retried create maps onto the same id, so the store itself refuses a twin. A key
            # reused after its 24 hours names a new generation, so it creates a new event.
            for generation in range(1000):
                event_id = uuid5(IDEMPOTENT_CREATE_NAMESPACE, f"{idempotency.key}#{generation}")
                existing = self._find_event(event_id)
                if existing is None:
                    break
                if existing.has_live_key(idempotency.key):
                    existing.replay(idempotency)
                    return EventView.of(existing)
        event = Event(
            id=event_id,
            name=name,
            total_tickets=total_tickets,
            max_tickets_per_user=max_tickets_per_user,
            organizer_id=organizer_id,
            idempotency_key=idempotency.key if idempotency else None,
            request_hash=idempotency.request_hash if idempotency else None,
        )
        try:
            self._save_and_announce(event)
        except OperationalError:
            # Not retried: without a key a retry could not tell a lost answer from a lost write.
            raise ServiceBusy("The store is busy, please retry.") from None
        except IntegrityError:
            existing = self._find_event(event_id)
            if existing is None or idempotency is None:
                raise
            existing.replay(idempotency)
            return EventView.of(existing)
        return EventView.of(event)

    def book(
        self,
        event_id: str,
        user_id: str,
        quantity: int = 1,
        idempotency: Idempotency | None = None,
    ) -> BookingOutcome:
        return self._execute(
            self._event_uuid(event_id),
            lambda event: event.book(user_id, quantity, idempotency),
            actor=user_id,
        )

    def cancel(
        self,
        actor_id: str,
        *,
        booking_id: str | None = None,
        waiting_list_id: str | None = None,
        event_id: str | None = None,
        actor_is_admin: bool = False,
        idempotency: Idempotency | None = None,
    ) -> tuple[str, CancelOutcome]:
        """Cancel by exactly one of booking id, waitlist id, or event id (own holding)."""
        given = [value for value in (booking_id, waiting_list_id, event_id) if value is not None]
        if len(given) != 1:
            raise InvalidCommand("Give exactly one of bookingId, waitingListId, eventId.")
        if event_id is not None:
            target = self._event_uuid(event_id)
        else:
            parsed = parse_entry_id(booking_id or waiting_list_id or "")
            if parsed is None:
                raise BookingNotFound("No such booking or waitlist entry.")
            target = parsed[1]
        outcome = self._execute(
            target,
            lambda event: event.cancel(
                actor_id,
                booking_id=booking_id,
                waiting_list_id=waiting_list_id,
                user_id=actor_id if event_id is not None else None,
                actor_is_admin=actor_is_admin,
                idempotency=idempotency,
            ),
            missing=_booking_not_found if event_id is None else None,
        )
        return str(target), outcome

    def close_event(
        self,
        event_id: str,
        actor_id: str,
        *,
        actor_is_admin: bool = False,
        idempotency: Idempotency | None = None,
    ) -> EventView:
        def decide(event: Event) -> None:
            event.close(actor_id, actor_is_admin=actor_is_admin, idempotency=idempotency)

        return self._execute_and_view(self._event_uuid(event_id), decide)

    def change_capacity(
        self,
        event_id: str,
        actor_id: str,
        total_tickets: int,
        *,
        actor_is_admin: bool = False,
        idempotency: Idempotency | None = None,
    ) -> EventView:
        def decide(event: Event) -> None:
            event.change_capacity(
                actor_id, total_tickets, actor_is_admin=actor_is_admin, idempotency=idempotency
            )

        return self._execute_and_view(self._event_uuid(event_id), decide)

    def get_event(self, event_id: str, version: int | None = None) -> Event:
        """The aggregate rebuilt from the store (at ``version``, or the latest)."""
        uuid = self._event_uuid(event_id)
        try:
            event = self.repository.get(uuid, version=version)
        except AggregateNotFoundError:
            raise EventNotFound("No such event.") from None
        if not isinstance(event, Event):
            raise EventNotFound("No such event.")
        return event

    def history(self, event_id: str, from_version: int = 1, limit: int | None = None) -> list[Any]:
        """The stored domain events of one ticketed event, oldest first."""
        uuid = self._event_uuid(event_id)
        events = list(self.events.get(uuid, gt=from_version - 1, limit=limit))
        if from_version <= 1 and (
            not events or getattr(events[0], "originator_topic", None) != Event.TOPIC
        ):
            raise EventNotFound("No such event.")
        return events

    # ============================================================== internals
    def _execute(
        self,
        event_id: UUID,
        decide: Callable[[Event], Any],
        missing: Callable[[], Exception] | None = None,
        actor: str | None = None,
    ) -> Any:
        try:
            return self.lanes.execute(event_id, decide, actor)
        except EventNotFound:
            if missing is not None:
                raise missing() from None
            raise

    def _execute_and_view(self, event_id: UUID, decide: Callable[[Event], None]) -> EventView:
        """Run ``decide``, then answer with the event as that command left it."""

        def decide_and_view(event: Event) -> EventView:
            decide(event)
            return EventView.of(event)

        return self._execute(event_id, decide_and_view)

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
            _log_appended(appended, result.positions)
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

    def _save_and_announce(self, *aggregates: Any) -> None:
        self.save(*aggregates)
        self._announce()

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Append, and log each appended domain event with its position in the store."""
        recordings = super().save(*objs, **kwargs)
        _log_appended(
            [recording.domain_event for recording in recordings],
            [recording.notification.id for recording in recordings],
        )
        return recordings

    def _announce(self) -> None:
        """Wake listeners (e.g. the projection runner); a broken one never fails a commit."""
        for listener in list(self.after_append):
            try:
                listener()
            except Exception:
                log.warning("after-append listener %r failed", listener, exc_info=True)

    def _find_event(self, event_id: UUID) -> Event | None:
        try:
            event = self.repository.get(event_id)
        except AggregateNotFoundError:
            return None
        return event if isinstance(event, Event) else None

    @staticmethod
    def _event_uuid(event_id: str) -> UUID:
        try:
            return UUID(str(event_id))
        except ValueError:
            raise EventNotFound("No such event.") from None


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


def _log_appended(domain_events: list[Any], positions: Sequence[int]) -> None:
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


def _booking_not_found() -> Exception:
    return BookingNotFound("No such booking or waitlist entry.")


def open_service(
    database_url: str | None = None,
    *,
    create_tables: bool = False,
    pool_size: int = 5,
    **settings: str,
) -> TicketingService:
    """The service on the store that ``DATABASE_URL`` names (see ``domain.persistence``).

    ``settings`` are extra environment entries (e.g. ``SNAPSHOT_INTERVAL``, ``ARGON2_TIME_COST``).
    """
    from domain.persistence import eventsourcing_env, parse_database_url

    db = parse_database_url(database_url)
    env = eventsourcing_env(db, create_tables=create_tables, pool_size=pool_size)
    env.update(settings)
    service = TicketingService(env)
    if db.is_postgres:
        service.turns = PostgresTurns(db, service.recorder)
    return service
