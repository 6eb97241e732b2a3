"""The ticketed ``Event`` aggregate: every booking rule lives here and nowhere else.

Commands (``book``, ``cancel``, ``leave_queue``, ``change_capacity``, ``close``) check the
rules first and only then trigger domain events, so a refused command never leaves a
half-applied state. The decorated ``_on_*`` methods are both the state change and the
replay rule.

State is kept compact and O(1) for the questions a hot on-sale asks:
``holders`` answers "does this user hold an entry", the insertion-ordered ``waitlist``
dict answers "who is next" and removes any entry without a scan.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import eventsourcing.domain
from eventsourcing.domain import Aggregate, Snapshot, event
from eventsourcing.utils import register_topic

from domain.errors import (
    AlreadyBooked,
    AlreadyCancelled,
    BookingNotFound,
    CapacityBelowBooked,
    EventClosed,
    IdempotencyKeyReused,
    InvalidCommand,
    NotAllowed,
)

MAX_TOTAL_TICKETS = 1_000_000
MAX_TICKETS_PER_USER = 100
IDEMPOTENCY_TTL = timedelta(hours=24)

BOOKING_PREFIX = "bk"
WAITLIST_PREFIX = "wl"


@dataclass(frozen=True)
class Idempotency:
    """A caller-scoped idempotency key and the fingerprint of the request it came with."""

    key: str
    request_hash: str


@dataclass
class BookingOutcome:
    booking_id: str | None = None
    quantity: int = 0
    waiting_list_id: str | None = None
    waiting_quantity: int = 0
    position: int | None = None
    replayed: bool = False


@dataclass
class CancelOutcome:
    user_id: str
    released: int
    reassigned: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False


def make_entry_id(prefix: str, event_id: UUID, sequence: int) -> str:
    """Booking and waitlist ids name their event so a command can be routed without a lookup."""
    return f"{prefix}_{event_id.hex}_{sequence}"


def parse_entry_id(entry_id: str) -> tuple[str, UUID, int] | None:
    """Split an entry id into (prefix, event id, sequence); ``None`` when malformed."""
    parts = entry_id.split("_")
    if len(parts) != 3 or parts[0] not in (BOOKING_PREFIX, WAITLIST_PREFIX):
        return None
    try:
        return parts[0], UUID(hex=parts[1]), int(parts[2])
    except ValueError:
        return None


class EventSnapshot(Snapshot):
    """A snapshot of an ``Event``, stored under a stable topic like its domain events."""

    TOPIC = "ticketing:Event.Snapshot"


# Resolving a stored snapshot's topic needs the name registered before the first load.
register_topic(EventSnapshot.TOPIC, EventSnapshot)


class Event(Aggregate):
    """A ticketed event: capacity, confirmed bookings and a strict FIFO waiting list.

    Topics are explicit and stable (``ticketing:Event...``): stored events and snapshots
    name these, not the module path, so moving or renaming this module orphans nothing.
    """

    TOPIC = "ticketing:Event"

    class Created(Aggregate.Created):
        TOPIC = "ticketing:Event.Created"

    Snapshot = EventSnapshot
    id: UUID

    @event("EventInitialized", topic="ticketing:Event.EventInitialized")
    def __init__(
        self,
        name: str,
        total_tickets: int,
        max_tickets_per_user: int,
        organizer_id: str,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> None:
        self.name = name
        self.total_tickets = total_tickets
        self.max_tickets_per_user = max_tickets_per_user
        self.organizer_id = organizer_id
        self.closed = False
        self.booked = 0
        self.waiting_seats = 0
        self.sequence = 0
        # booking id -> [user id, quantity]; active bookings only.
        self.bookings: dict[str, list[Any]] = {}
        # waiting list id -> [user id, quantity still wanted]; dict order is queue order.
        self.waitlist: dict[str, list[Any]] = {}
        # user id -> [booking id or None, waiting list id or None]
        self.holders: dict[str, list[str | None]] = {}
        # scoped idempotency key -> [request hash, outcome, recorded at (ISO)]
        self.idempotency: dict[str, list[Any]] = {}
        if idempotency_key:
            self._remember(idempotency_key, request_hash, {"created": True})

    @staticmethod
    def validate_new(name: str, total_tickets: int, max_tickets_per_user: int) -> None:
        if not name or not name.strip() or len(name) > 255:
            raise InvalidCommand("Event name must be 1-255 characters.", field="name")
        if not 1 <= total_tickets <= MAX_TOTAL_TICKETS:
            raise InvalidCommand(
                f"totalTickets must be between 1 and {MAX_TOTAL_TICKETS}.", field="totalTickets"
            )
        if not 1 <= max_tickets_per_user <= min(MAX_TICKETS_PER_USER, total_tickets):
            raise InvalidCommand(
                "maxTicketsPerUser must be between 1 and min(100, totalTickets).",
                field="maxTicketsPerUser",
            )

    # ----------------------------------------------------------------- queries
    @property
    def available(self) -> int:
        return self.total_tickets - self.booked

    def holding_of(self, user_id: str) -> tuple[str | None, str | None]:
        booking_id, waiting_list_id = self.holders.get(user_id, (None, None))
        return booking_id, waiting_list_id

    def position_of(self, waiting_list_id: str) -> int | None:
        """Current 1-based place in the queue. O(n): only for answers, never on a hot path."""
        for position, entry_id in enumerate(self.waitlist, start=1):
            if entry_id == waiting_list_id:
                return position
        return None

    def is_organizer(self, user_id: str) -> bool:
        return self.organizer_id == user_id

    def replay(self, idempotency: Idempotency | None) -> dict[str, Any] | None:
        """The recorded outcome of a command already applied with this key, if any."""
        if idempotency is None:
            return None
        recorded = self.idempotency.get(idempotency.key)
        if recorded is None or self.key_expired(recorded):
            return None
        if recorded[0] != idempotency.request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request.",
            )
        return deepcopy(recorded[1])  # the caller's copy: the record itself stays as it was

    def has_live_key(self, key: str) -> bool:
        recorded = self.idempotency.get(key)
        return recorded is not None and not self.key_expired(recorded)

    @staticmethod
    def key_expired(recorded: list[Any]) -> bool:
        """Keys are kept 24 hours: an older record no longer answers for its key."""
        now = eventsourcing.domain.datetime_now_with_tzinfo()  # the clock events are stamped by
        return now - datetime.fromisoformat(recorded[2]) > IDEMPOTENCY_TTL

    # ---------------------------------------------------------------- commands
    def book(
        self, user_id: str, quantity: int, idempotency: Idempotency | None = None
    ) -> BookingOutcome:
        recorded = self.replay(idempotency)
        if recorded is not None:
            return BookingOutcome(**recorded, replayed=True)
        if self.closed:
            raise EventClosed("The event is closed to new bookings.")
        if not 1 <= quantity <= self.max_tickets_per_user:
            raise InvalidCommand(
                f"quantity must be between 1 and {self.max_tickets_per_user}.", field="quantity"
            )
        if user_id in self.holders:
            raise AlreadyBooked("You already hold a booking or waitlist entry for this event.")
        key, request_hash = _unpack(idempotency)
        outcome = BookingOutcome()
        seats = min(quantity, self.available)
        if seats:
            outcome.booking_id = make_entry_id(BOOKING_PREFIX, self.id, self.sequence + 1)
            outcome.quantity = seats
            self._on_booked(
                user_id=user_id,
                booking_id=outcome.booking_id,
                quantity=seats,
                idempotency_key=key,
                request_hash=request_hash,
            )
        if quantity > seats:
            outcome.waiting_list_id = make_entry_id(WAITLIST_PREFIX, self.id, self.sequence + 1)
            outcome.waiting_quantity = quantity - seats
            outcome.position = len(self.waitlist) + 1
            self._on_waitlisted(
                user_id=user_id,
                waiting_list_id=outcome.waiting_list_id,
                quantity=quantity - seats,
                position=outcome.position,
                idempotency_key=key,
                request_hash=request_hash,
            )
        return outcome

    def cancel(
        self,
        actor_id: str,
        *,
        booking_id: str | None = None,
        waiting_list_id: str | None = None,
        user_id: str | None = None,
        actor_is_admin: bool = False,
        idempotency: Idempotency | None = None,
    ) -> CancelOutcome:
        """Cancel a holding by booking id, waitlist id, or the holder's user id.

        By booking or by user: the seats are released and the holder's own waitlist
        remainder is dropped (they are giving seats back, not waiting for more); the
        freed seats then pass to the head of the queue in the same append.
        By waitlist id: only the queue entry is left; booked seats are kept.
        """
        recorded = self.replay(idempotency)
        if recorded is not None:
            return CancelOutcome(**recorded, replayed=True)
        holder, drop_booking = self._find_holder(booking_id, waiting_list_id, user_id)
        if not (holder == actor_id or actor_is_admin or self.is_organizer(actor_id)):
            raise NotAllowed("Only the holder, the organizer or an admin may cancel this.")
        held_booking, held_waiting = self.holders[holder]
        released_booking = held_booking if drop_booking else None
        released = self.bookings[released_booking][1] if released_booking else 0
        dropped = self.waitlist[held_waiting][1] if held_waiting else 0
        key, request_hash = _unpack(idempotency)
        self._on_cancelled(
            user_id=holder,
            booking_id=released_booking,
            quantity=released,
            waiting_list_id=held_waiting,
            waiting_quantity=dropped,
            cancelled_by=actor_id,
            idempotency_key=key,
            request_hash=request_hash,
        )
        outcome = CancelOutcome(user_id=holder, released=released)
        outcome.reassigned = self._promote(key, request_hash)
        return outcome

    def change_capacity(
        self,
        actor_id: str,
        total_tickets: int,
        *,
        actor_is_admin: bool = False,
        idempotency: Idempotency | None = None,
    ) -> list[dict[str, Any]]:
        """Raise or lower capacity; a raise hands the new seats to the queue, FIFO."""
        recorded = self.replay(idempotency)
        if recorded is not None:
            return recorded["reassigned"]
        self._require_manager(actor_id, actor_is_admin)
        if not 1 <= total_tickets <= MAX_TOTAL_TICKETS:
            raise InvalidCommand(
                f"totalTickets must be between 1 and {MAX_TOTAL_TICKETS}.", field="totalTickets"
            )
        if total_tickets < self.booked:
            raise CapacityBelowBooked(
                f"{self.booked} tickets are booked; capacity cannot go below that.",
                bookedTickets=self.booked,
            )
        key, request_hash = _unpack(idempotency)
        self._on_capacity_changed(
            previous_total=self.total_tickets,
            total_tickets=total_tickets,
            changed_by=actor_id,
            idempotency_key=key,
            request_hash=request_hash,
        )
        return self._promote(key, request_hash)

    def close(
        self, actor_id: str, *, actor_is_admin: bool = False, idempotency: Idempotency | None = None
    ) -> None:
        if self.replay(idempotency) is not None:
            return
        self._require_manager(actor_id, actor_is_admin)
        if self.closed:
            raise EventClosed("The event is already closed.")
        key, request_hash = _unpack(idempotency)
        self._on_closed(closed_by=actor_id, idempotency_key=key, request_hash=request_hash)

    # ----------------------------------------------------------------- helpers
    def _require_manager(self, actor_id: str, actor_is_admin: bool) -> None:
        if not (actor_is_admin or self.is_organizer(actor_id)):
            raise NotAllowed("Only the organizer or an admin may manage this event.")

    def _find_holder(
        self, booking_id: str | None, waiting_list_id: str | None, user_id: str | None
    ) -> tuple[str, bool]:
        """Resolve the holder a cancellation targets, and whether booked seats are released."""
        if booking_id is not None:
            entry = self.bookings.get(booking_id)
            if entry is None:
                self._refuse_unknown(booking_id, BOOKING_PREFIX)
            return entry[0], True
        if waiting_list_id is not None:
            entry = self.waitlist.get(waiting_list_id)
            if entry is None:
                self._refuse_unknown(waiting_list_id, WAITLIST_PREFIX)
            return entry[0], False
        if user_id is not None and user_id in self.holders:
            return user_id, True
        raise BookingNotFound("You hold no booking or waitlist entry for this event.")

    def _refuse_unknown(self, entry_id: str, prefix: str) -> None:
        parsed = parse_entry_id(entry_id)
        if parsed and parsed[0] == prefix and parsed[1] == self.id and parsed[2] <= self.sequence:
            raise AlreadyCancelled("This booking or waitlist entry is no longer active.")
        raise BookingNotFound("No such booking or waitlist entry.")

    def _promote(self, key: str | None, request_hash: str | None) -> list[dict[str, Any]]:
        """Hand free seats to the head of the queue until seats or queue run out."""
        reassigned: list[dict[str, Any]] = []
        while self.available > 0 and self.waitlist:
            waiting_list_id, (user_id, wanted) = next(iter(self.waitlist.items()))
            seats = min(wanted, self.available)
            booking_id = self.holders[user_id][0] or make_entry_id(
                BOOKING_PREFIX, self.id, self.sequence + 1
            )
            self._on_reassigned(
                user_id=user_id,
                waiting_list_id=waiting_list_id,
                booking_id=booking_id,
                quantity=seats,
                remaining=wanted - seats,
                idempotency_key=key,
                request_hash=request_hash,
            )
            reassigned.append({"userId": user_id, "bookingId": booking_id, "quantity": seats})
        return reassigned

    def _remember(
        self,
        key: str,
        request_hash: str | None,
        outcome: dict[str, Any],
        at: datetime | None = None,
    ) -> None:
        """Record a command's outcome under its key; keys expire 24 hours after their command.

        ``at`` is the time of the domain event being applied. (``modified_on`` still holds
        the previous event's time then, which made a key used after a quiet spell look old.)
        """
        now = at or self.modified_on
        while self.idempotency:
            oldest_key, oldest = next(iter(self.idempotency.items()))
            if now - datetime.fromisoformat(oldest[2]) <= IDEMPOTENCY_TTL:
                break
            del self.idempotency[oldest_key]
        self.idempotency[key] = [request_hash, outcome, now.isoformat()]

    def _next_sequence(self, entry_id: str) -> None:
        parsed = parse_entry_id(entry_id)
        if parsed and parsed[2] > self.sequence:
            self.sequence = parsed[2]

    # ------------------------------------------------- domain events (replay rules)
    @event("TicketBooked", topic="ticketing:Event.TicketBooked")
    def _on_booked(
        self,
        user_id: str,
        booking_id: str,
        quantity: int,
        idempotency_key: str | None,
        request_hash: str | None,
        timestamp: datetime | None = None,
    ) -> None:
        self._next_sequence(booking_id)
        self.bookings[booking_id] = [user_id, quantity]
        self.holders[user_id] = [booking_id, None]
        self.booked += quantity
        if idempotency_key:
            self._remember(
                idempotency_key,
                request_hash,
                {"booking_id": booking_id, "quantity": quantity},
                timestamp,
            )

    @event("Waitlisted", topic="ticketing:Event.Waitlisted")
    def _on_waitlisted(
        self,
        user_id: str,
        waiting_list_id: str,
        quantity: int,
        position: int,
        idempotency_key: str | None,
        request_hash: str | None,
        timestamp: datetime | None = None,
    ) -> None:
        self._next_sequence(waiting_list_id)
        self.waitlist[waiting_list_id] = [user_id, quantity]
        self.waiting_seats += quantity
        holding = self.holders.setdefault(user_id, [None, None])
        holding[1] = waiting_list_id
        if idempotency_key:
            recorded = self.idempotency.get(idempotency_key)
            outcome = dict(recorded[1]) if recorded else {}
            outcome.update(
                waiting_list_id=waiting_list_id, waiting_quantity=quantity, position=position
            )
            self._remember(idempotency_key, request_hash, outcome, timestamp)

    @event("Cancelled", topic="ticketing:Event.Cancelled")
    def _on_cancelled(
        self,
        user_id: str,
        booking_id: str | None,
        quantity: int,
        waiting_list_id: str | None,
        waiting_quantity: int,
        cancelled_by: str,
        idempotency_key: str | None,
        request_hash: str | None,
        timestamp: datetime | None = None,
    ) -> None:
        holding = self.holders[user_id]
        if booking_id:
            del self.bookings[booking_id]
            self.booked -= quantity
            holding[0] = None
        if waiting_list_id:
            del self.waitlist[waiting_list_id]
            self.waiting_seats -= waiting_quantity
            holding[1] = None
        if holding == [None, None]:
            del self.holders[user_id]
        if idempotency_key:
            self._remember(
                idempotency_key,
                request_hash,
                {"user_id": user_id, "released": quantity, "reassigned": []},
                timestamp,
            )

    @event("Reassigned", topic="ticketing:Event.Reassigned")
    def _on_reassigned(
        self,
        user_id: str,
        waiting_list_id: str,
        booking_id: str,
        quantity: int,
        remaining: int,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> None:
        self._next_sequence(booking_id)
        entry = self.bookings.setdefault(booking_id, [user_id, 0])
        entry[1] += quantity
        self.booked += quantity
        self.waiting_seats -= quantity
        holding = self.holders[user_id]
        holding[0] = booking_id
        if remaining:
            self.waitlist[waiting_list_id][1] = remaining
        else:
            del self.waitlist[waiting_list_id]
            holding[1] = None
        if idempotency_key and idempotency_key in self.idempotency:
            self.idempotency[idempotency_key][1].setdefault("reassigned", []).append(
                {"userId": user_id, "bookingId": booking_id, "quantity": quantity}
            )

    @event("CapacityChanged", topic="ticketing:Event.CapacityChanged")
    def _on_capacity_changed(
        self,
        previous_total: int,
        total_tickets: int,
        changed_by: str,
        idempotency_key: str | None,
        request_hash: str | None,
        timestamp: datetime | None = None,
    ) -> None:
        self.total_tickets = total_tickets
        if idempotency_key:
            self._remember(idempotency_key, request_hash, {"reassigned": []}, timestamp)

    @event("EventClosed", topic="ticketing:Event.EventClosed")
    def _on_closed(
        self,
        closed_by: str,
        idempotency_key: str | None,
        request_hash: str | None,
        timestamp: datetime | None = None,
    ) -> None:
        self.closed = True
        if idempotency_key:
            self._remember(idempotency_key, request_hash, {"closed": True}, timestamp)


def _unpack(idempotency: Idempotency | None) -> tuple[str | None, str | None]:
    if idempotency is None:
        return None, None
    return idempotency.key, idempotency.request_hash
