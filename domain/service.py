"""The application service: one method per command, the only place that loads and saves.

The service composes its collaborators on one store, each given what it uses by name:
ticketed-event commands go through per-event lanes, so that commands of one process never
fight over a version, and are appended in batches (``domain.batches``); user commands are
rare and live in ``domain.accounts``; releasing what a deleted account holds is
``domain.closed_accounts``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, OperationalError
from eventsourcing.utils import Environment, EnvType

from domain.accounts import Accounts
from domain.batches import EventBatches, log_appended
from domain.closed_accounts import ClosedAccounts
from domain.credentials import CredentialVersions
from domain.entries import (
    OFFER_PREFIX,
    AcceptOutcome,
    BookingOutcome,
    CancelOutcome,
    DeclineOutcome,
    Idempotency,
    parse_entry_id,
)
from domain.errors import (
    BookingNotFound,
    EventNotFound,
    InvalidCommand,
    OfferNotFound,
    ServiceBusy,
)
from domain.event import AUTO, Event
from domain.lanes import Lanes
from domain.passwords import Passwords
from domain.ports import Turns
from domain.settings import ServiceSettings
from domain.store import STORE_NAME, event_history
from domain.views import EventView

log = logging.getLogger("ticketing.events")

IDEMPOTENT_CREATE_NAMESPACE = UUID("6f1c9a44-3f7e-4c55-9d0e-0a2b7c1e5d11")


class TicketingService(Application[UUID]):
    """Use cases of the booking service."""

    name = STORE_NAME

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        turns: Callable[[Any], Turns],
        settings: ServiceSettings | None = None,
    ) -> None:
        """``env`` holds the store's settings for the eventsourcing library, ``turns`` builds
        the store's turns on the library's recorder, ``settings`` are the service's own."""
        super().__init__(env)
        self.settings = settings or ServiceSettings()
        self.passwords = Passwords(
            time_cost=self.settings.argon2_time_cost,
            memory_cost=self.settings.argon2_memory_cost,
            parallelism=self.settings.argon2_parallelism,
        )
        self.after_append: list[Callable[[], None]] = []
        self.turns: Turns = turns(self.recorder)
        # Which tokens stand; kept current from the store by a ``CredentialFollower``.
        self.credentials = CredentialVersions()
        self.batches = EventBatches(
            turns=self.turns,
            mapper=self.mapper,
            events=self.events,
            snapshots=self.snapshots,
            find_event=self._find_event,
            announce=self._announce,
            settings=self.settings,
        )
        self.closed_accounts = ClosedAccounts(find_event=self._find_event, cancel=self.cancel)
        self.accounts = Accounts(
            save=self.save,
            events=self.events,
            passwords=self.passwords,
            release_holdings=self.closed_accounts.release_holdings,
            max_attempts=self.settings.command_max_attempts,
            admin_emails=self.settings.admin_emails,
        )

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """The library's settings exactly as given, with snapshots on. The library would
        merge ``os.environ`` in, so that a variable of the process could change the store
        behind the back of the code that configures it."""
        return Environment(name, {"IS_SNAPSHOTTING_ENABLED": "y", **(env or {})})

    @property
    def lanes(self) -> Lanes[Event]:
        return self.batches.lanes

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
        *,
        waitlist_mode: str = AUTO,
        offer_ttl_seconds: int | None = None,
    ) -> EventView:
        Event.validate_new(
            name, total_tickets, max_tickets_per_user, waitlist_mode, offer_ttl_seconds
        )
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
            waitlist_mode=waitlist_mode,
            offer_ttl_seconds=offer_ttl_seconds,
        )
        try:
            return self.batches.create(event, EventView.of)
        except OperationalError:
            # Not retried: without a key a retry could not tell a lost answer from a lost write.
            raise ServiceBusy("The store is busy, please retry.") from None
        except IntegrityError:
            existing = self._find_event(event_id)
            if existing is None or idempotency is None:
                raise
            existing.replay(idempotency)
            return EventView.of(existing)

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

    def accept_offer(
        self, offer_id: str, actor_id: str, idempotency: Idempotency | None = None
    ) -> tuple[str, AcceptOutcome]:
        """Accept an open offer: its held seats join the actor's booking."""
        target = self._offer_event(offer_id)
        outcome = self._execute(
            target,
            lambda event: event.accept_offer(actor_id, offer_id, idempotency),
            missing=_offer_not_found,
        )
        return str(target), outcome

    def decline_offer(
        self, offer_id: str, actor_id: str, idempotency: Idempotency | None = None
    ) -> tuple[str, DeclineOutcome]:
        """Decline an open offer: the entry leaves the queue, its seats go to the next heads."""
        target = self._offer_event(offer_id)
        outcome = self._execute(
            target,
            lambda event: event.decline_offer(actor_id, offer_id, idempotency),
            missing=_offer_not_found,
        )
        return str(target), outcome

    def settle_due_offers(self, event_id: str) -> list[str]:
        """Expire the event's offers that are due; the ids of those expired (the deadline
        follower's command, safe to repeat: an offer expires once)."""
        return self._execute(self._event_uuid(event_id), Event.settle_due_offers)

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
        return event_history(self.events, event_id, from_version, limit)

    # ============================================================== accounts
    def delete_user(self, user_id: str, held_event_ids: Iterable[str]) -> None:
        self.accounts.delete_user(user_id, held_event_ids)

    def release_holdings(self, user_id: str, event_ids: Iterable[str]) -> None:
        self.closed_accounts.release_holdings(user_id, event_ids)

    # ============================================================== internals
    def _execute(
        self,
        event_id: UUID,
        decide: Callable[[Event], Any],
        missing: Callable[[], Exception] | None = None,
        actor: str | None = None,
    ) -> Any:
        try:
            return self.batches.execute(event_id, decide, actor)
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

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Append, and log each appended domain event with its position in the store."""
        recordings = super().save(*objs, **kwargs)
        log_appended(
            [recording.domain_event for recording in recordings],
            [recording.notification.id for recording in recordings],
        )
        for recording in recordings:  # this process's own changes count at once
            stored = recording.notification
            self.credentials.record(
                str(stored.originator_id), stored.originator_version, stored.topic
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
    def _offer_event(offer_id: str) -> UUID:
        parsed = parse_entry_id(offer_id)
        if parsed is None or parsed[0] != OFFER_PREFIX:
            raise OfferNotFound("No such offer.")
        return parsed[1]

    @staticmethod
    def _event_uuid(event_id: str) -> UUID:
        try:
            return UUID(str(event_id))
        except ValueError:
            raise EventNotFound("No such event.") from None


def _booking_not_found() -> Exception:
    return BookingNotFound("No such booking or waitlist entry.")


def _offer_not_found() -> Exception:
    return OfferNotFound("No such offer.")
