"""The ticketed ``Event`` aggregate: every booking rule lives here and nowhere else.

Commands (``book``, ``cancel``, ``change_capacity``, ``close``, ``accept_offer``,
``decline_offer``, ``settle_due_offers``) check the rules first and only then trigger domain
events, so a refused command never leaves a half-applied state. The decorated ``_on_*``
methods are both the state change and the replay rule.

Freed seats pass to the head of the queue in one of two ways, chosen per event: in ``auto``
mode they become the head's booking at once (``Reassigned``); in ``offer`` mode they are held
for the head as an offer with a deadline (``OfferMade``) that it accepts, declines or lets
expire. Time is an input like any other: the deadline is stored in the offer's event, and
every command settles the offers that are due by the clock events are stamped with before it
decides, so no rule depends on a timer being on time.

State is kept compact and O(1) for the questions a hot on-sale asks:
``holders`` answers "does this user hold an entry", the insertion-ordered ``waitlist``
dict answers "who is next" and removes any entry without a scan, and the insertion-ordered
``offers`` dict is kept in deadline order (one TTL per event makes that the order offers
were made), so the next due offer is first.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import eventsourcing.domain
from eventsourcing.domain import Aggregate, Snapshot, event
from eventsourcing.utils import register_topic

from domain.entries import (
    BOOKING_PREFIX,
    OFFER_PREFIX,
    WAITLIST_PREFIX,
    AcceptOutcome,
    BookingOutcome,
    CancelOutcome,
    DeclineOutcome,
    Idempotency,
    make_entry_id,
    parse_entry_id,
    unpack,
)
from domain.errors import (
    AlreadyBooked,
    AlreadyCancelled,
    BookingNotFound,
    CapacityBelowBooked,
    EventClosed,
    IdempotencyKeyReused,
    InvalidCommand,
    NotAllowed,
    OfferClosed,
    OfferExpired,
    OfferNotFound,
)

MAX_TOTAL_TICKETS = 1_000_000
MAX_TICKETS_PER_USER = 100
IDEMPOTENCY_TTL = timedelta(hours=24)

AUTO = "auto"
OFFER = "offer"
WAITLIST_MODES = (AUTO, OFFER)
DEFAULT_OFFER_TTL_SECONDS = 3600
MIN_OFFER_TTL_SECONDS = 60
MAX_OFFER_TTL_SECONDS = 604_800

ACCEPTED, DECLINED, EXPIRED = "accepted", "declined", "expired"


def now() -> datetime:
    """The clock domain events are stamped by (looked up at each call, so tests can set it)."""
    return eventsourcing.domain.datetime_now_with_tzinfo()


class EventSnapshot(Snapshot):
    """A snapshot of an ``Event``, stored under a stable topic like its domain events."""

    TOPIC = "ticketing:Event.Snapshot"


# Resolving a stored snapshot's topic needs the name registered before the first load.
register_topic(EventSnapshot.TOPIC, EventSnapshot)


class Event(Aggregate):
    """A ticketed event: capacity, confirmed bookings, a strict FIFO waiting list and the
    offers of held seats made to its heads.

    Topics are explicit and stable (``ticketing:Event...``): stored events and snapshots
    name these, not the module path, so moving or renaming this module orphans nothing.
    """

    TOPIC = "ticketing:Event"
    # Version 2 added offers: a snapshot of version 1 is upcast to an event in auto mode.
    class_version = 2

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
        waitlist_mode: str = AUTO,
        offer_ttl_seconds: int | None = None,
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
        self._init_offers(waitlist_mode, offer_ttl_seconds)
        if idempotency_key:
            self._remember(idempotency_key, request_hash, {"created": True})

    def _init_offers(self, waitlist_mode: str, offer_ttl_seconds: int | None) -> None:
        self.waitlist_mode = waitlist_mode
        self.offer_ttl_seconds = offer_ttl_seconds
        self.held = 0
        # open offer id -> [user id, waiting list id, quantity, expires at (ISO)]; dict order
        # is deadline order (the order offers were made, unless clocks disagreed).
        self.offers: dict[str, list[Any]] = {}
        # waiting list id -> its open offer's id: an entry has at most one open offer.
        self.offered_entries: dict[str, str] = {}
        # settled offer id -> accepted / declined / expired, to answer a late call exactly.
        self.offer_outcomes: dict[str, str] = {}
        # every offer id -> the user it was made to: what became of an offer is the business
        # of that user alone, so anyone else is refused before being told.
        self.offer_users: dict[str, str] = {}

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.update(
            waitlist_mode=AUTO,
            offer_ttl_seconds=None,
            held=0,
            offers={},
            offered_entries={},
            offer_outcomes={},
            offer_users={},
        )

    @staticmethod
    def validate_new(
        name: str,
        total_tickets: int,
        max_tickets_per_user: int,
        waitlist_mode: str = AUTO,
        offer_ttl_seconds: int | None = None,
    ) -> None:
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
        if waitlist_mode not in WAITLIST_MODES:
            raise InvalidCommand("waitlistMode must be auto or offer.", field="waitlistMode")
        if offer_ttl_seconds is not None and waitlist_mode != OFFER:
            raise InvalidCommand(
                "offerTtlSeconds applies only with waitlistMode offer.", field="offerTtlSeconds"
            )
        if offer_ttl_seconds is not None and not (
            MIN_OFFER_TTL_SECONDS <= offer_ttl_seconds <= MAX_OFFER_TTL_SECONDS
        ):
            raise InvalidCommand(
                f"offerTtlSeconds must be between {MIN_OFFER_TTL_SECONDS} and "
                f"{MAX_OFFER_TTL_SECONDS}.",
                field="offerTtlSeconds",
            )

    # ----------------------------------------------------------------- queries
    @property
    def available(self) -> int:
        """Seats nobody holds: neither booked nor held for an open offer."""
        return self.total_tickets - self.booked - self.held

    def holding_of(self, user_id: str) -> tuple[str | None, str | None]:
        booking_id, waiting_list_id = self.holders.get(user_id, (None, None))
        return booking_id, waiting_list_id

    def offer_of(self, user_id: str) -> tuple[str, int, str] | None:
        """The user's open offer as (offer id, quantity, expires at ISO), if any."""
        waiting_list_id = self.holding_of(user_id)[1]
        offer_id = self.offered_entries.get(waiting_list_id) if waiting_list_id else None
        if offer_id is None:
            return None
        _, _, quantity, expires_at = self.offers[offer_id]
        return offer_id, quantity, expires_at

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
        return now() - datetime.fromisoformat(recorded[2]) > IDEMPOTENCY_TTL

    # ---------------------------------------------------------------- commands
    def book(
        self, user_id: str, quantity: int, idempotency: Idempotency | None = None
    ) -> BookingOutcome:
        self.settle_due_offers()
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
        key, request_hash = unpack(idempotency)
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
        A queue entry that leaves with an open offer declines it first.
        """
        self.settle_due_offers()
        recorded = self.replay(idempotency)
        if recorded is not None:
            return CancelOutcome(**recorded, replayed=True)
        holder, drop_booking = self._find_holder(booking_id, waiting_list_id, user_id)
        if not (holder == actor_id or actor_is_admin or self.is_organizer(actor_id)):
            raise NotAllowed("Only the holder, the organizer or an admin may cancel this.")
        held_booking, held_waiting = self.holders[holder]
        released_booking = held_booking if drop_booking else None
        released = self.bookings[released_booking][1] if released_booking else 0
        key, request_hash = unpack(idempotency)
        if held_waiting in self.offered_entries:
            self._decline(self.offered_entries[held_waiting], actor_id, key, request_hash)
            held_waiting = None
        if released_booking or held_waiting:
            dropped = self.waitlist[held_waiting][1] if held_waiting else 0
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
        outcome.reassigned, outcome.offered = self._hand_on_free_seats(key, request_hash)
        return outcome

    def change_capacity(
        self,
        actor_id: str,
        total_tickets: int,
        *,
        actor_is_admin: bool = False,
        idempotency: Idempotency | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Raise or lower capacity; a raise hands the new seats to the queue, FIFO.
        Returns the seats reassigned and the offers made."""
        self.settle_due_offers()
        recorded = self.replay(idempotency)
        if recorded is not None:
            return recorded.get("reassigned", []), recorded.get("offered", [])
        self._require_manager(actor_id, actor_is_admin)
        if not 1 <= total_tickets <= MAX_TOTAL_TICKETS:
            raise InvalidCommand(
                f"totalTickets must be between 1 and {MAX_TOTAL_TICKETS}.", field="totalTickets"
            )
        if total_tickets < self.booked + self.held:
            raise CapacityBelowBooked(
                f"{self.booked} tickets are booked and {self.held} held for offers; "
                "capacity cannot go below that.",
                bookedTickets=self.booked,
                heldTickets=self.held,
            )
        key, request_hash = unpack(idempotency)
        self._on_capacity_changed(
            previous_total=self.total_tickets,
            total_tickets=total_tickets,
            changed_by=actor_id,
            idempotency_key=key,
            request_hash=request_hash,
        )
        return self._hand_on_free_seats(key, request_hash)

    def close(
        self, actor_id: str, *, actor_is_admin: bool = False, idempotency: Idempotency | None = None
    ) -> None:
        """Close to new bookings and queue entries; open offers stay open until they expire."""
        self.settle_due_offers()
        if self.replay(idempotency) is not None:
            return
        self._require_manager(actor_id, actor_is_admin)
        if self.closed:
            raise EventClosed("The event is already closed.")
        key, request_hash = unpack(idempotency)
        self._on_closed(closed_by=actor_id, idempotency_key=key, request_hash=request_hash)

    def accept_offer(
        self, actor_id: str, offer_id: str, idempotency: Idempotency | None = None
    ) -> AcceptOutcome:
        """The held seats join the holder's booking (a new one, or the partial holder's)."""
        self.settle_due_offers()
        recorded = self.replay(idempotency)
        if recorded is not None:
            return AcceptOutcome(**recorded, replayed=True)
        user_id, waiting_list_id, quantity, _ = self._open_offer(offer_id, actor_id)
        key, request_hash = unpack(idempotency)
        booking_id = self.holders[user_id][0] or make_entry_id(
            BOOKING_PREFIX, self.id, self.sequence + 1
        )
        self._on_offer_accepted(
            offer_id=offer_id,
            user_id=user_id,
            waiting_list_id=waiting_list_id,
            booking_id=booking_id,
            quantity=quantity,
            remaining=self.waitlist[waiting_list_id][1] - quantity,
            idempotency_key=key,
            request_hash=request_hash,
        )
        # A remainder that keeps its place has no offer now: seats that came free while the
        # accepted offer was open (skipped then, one offer per entry) are offered to it.
        offered = self._make_offers(key, request_hash)
        return AcceptOutcome(
            booking_id=booking_id,
            user_id=user_id,
            quantity=self.bookings[booking_id][1],
            offered=offered,
        )

    def decline_offer(
        self, actor_id: str, offer_id: str, idempotency: Idempotency | None = None
    ) -> DeclineOutcome:
        """The entry leaves the queue; its seats are offered to the next heads."""
        self.settle_due_offers()
        recorded = self.replay(idempotency)
        if recorded is not None:
            return DeclineOutcome(offered=recorded.get("offered", []), replayed=True)
        self._open_offer(offer_id, actor_id)
        key, request_hash = unpack(idempotency)
        self._decline(offer_id, actor_id, key, request_hash)
        return DeclineOutcome(offered=self._hand_on_free_seats(key, request_hash)[1])

    def settle_due_offers(self) -> list[str]:
        """Expire every open offer whose deadline has passed, then offer its seats on.

        Every command calls this first; the deadline follower calls it alone. Returns the
        ids of the offers it expired (none when nothing is due, so it is safe to repeat).
        """
        if not self.offers:
            return []
        moment = now()
        expired = []
        while self.offers:
            offer_id, (user_id, waiting_list_id, quantity, expires_at) = next(
                iter(self.offers.items())
            )
            if datetime.fromisoformat(expires_at) > moment:
                break
            self._on_offer_expired(
                offer_id=offer_id,
                user_id=user_id,
                waiting_list_id=waiting_list_id,
                quantity=quantity,
                waiting_quantity=self.waitlist[waiting_list_id][1],
                expires_at=expires_at,
            )
            expired.append(offer_id)
        if expired:
            self._hand_on_free_seats(None, None)
        return expired

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

    def _open_offer(self, offer_id: str, actor_id: str) -> list[Any]:
        """The open offer ``offer_id`` of ``actor_id``, or the refusal that says why not."""
        owner = self.offer_users.get(offer_id)
        if owner is None:
            raise OfferNotFound("No such offer.")
        if owner != actor_id:
            raise NotAllowed("Only the person an offer was made to may answer it.")
        offer = self.offers.get(offer_id)
        if offer is None:
            outcome = self.offer_outcomes[offer_id]
            if outcome == EXPIRED:
                raise OfferExpired("This offer has expired.")
            raise OfferClosed(f"This offer was already {outcome}.")
        return offer

    def _decline(
        self, offer_id: str, actor_id: str, key: str | None, request_hash: str | None
    ) -> None:
        user_id, waiting_list_id, quantity, _ = self.offers[offer_id]
        self._on_offer_declined(
            offer_id=offer_id,
            user_id=user_id,
            waiting_list_id=waiting_list_id,
            quantity=quantity,
            waiting_quantity=self.waitlist[waiting_list_id][1],
            declined_by=actor_id,
            idempotency_key=key,
            request_hash=request_hash,
        )

    def _hand_on_free_seats(
        self, key: str | None, request_hash: str | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Pass free seats to the queue's heads: (seats reassigned, offers made)."""
        if self.waitlist_mode == OFFER:
            return [], self._make_offers(key, request_hash)
        return self._reassign(key, request_hash), []

    def _reassign(self, key: str | None, request_hash: str | None) -> list[dict[str, Any]]:
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

    def _make_offers(self, key: str | None, request_hash: str | None) -> list[dict[str, Any]]:
        """Offer free seats to the queue's heads in order, skipping entries with an open
        offer (one open offer per entry), until seats or queue run out."""
        offered: list[dict[str, Any]] = []
        if self.available <= 0 or len(self.offered_entries) >= len(self.waitlist):
            return offered
        expires_at = (now() + timedelta(seconds=self._offer_ttl)).isoformat()
        for waiting_list_id, (user_id, wanted) in self.waitlist.items():  # offers leave it be
            if self.available <= 0:
                break
            if waiting_list_id in self.offered_entries:
                continue
            offer_id = make_entry_id(OFFER_PREFIX, self.id, self.sequence + 1)
            quantity = min(wanted, self.available)
            self._on_offer_made(
                offer_id=offer_id,
                user_id=user_id,
                waiting_list_id=waiting_list_id,
                quantity=quantity,
                expires_at=expires_at,
                idempotency_key=key,
                request_hash=request_hash,
            )
            offered.append({"userId": user_id, "offerId": offer_id, "quantity": quantity})
        return offered

    @property
    def _offer_ttl(self) -> int:
        return self.offer_ttl_seconds or DEFAULT_OFFER_TTL_SECONDS

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
        moment = at or self.modified_on
        while self.idempotency:
            oldest_key, oldest = next(iter(self.idempotency.items()))
            if moment - datetime.fromisoformat(oldest[2]) <= IDEMPOTENCY_TTL:
                break
            del self.idempotency[oldest_key]
        self.idempotency[key] = [request_hash, outcome, moment.isoformat()]

    def _record_handed_on(self, key: str | None, field_name: str, item: dict[str, Any]) -> None:
        """Add seats handed on to the outcome recorded under the command's key."""
        if key and key in self.idempotency:
            self.idempotency[key][1].setdefault(field_name, []).append(item)

    def _next_sequence(self, entry_id: str) -> None:
        parsed = parse_entry_id(entry_id)
        if parsed and parsed[2] > self.sequence:
            self.sequence = parsed[2]

    def _leave_queue(self, user_id: str, waiting_list_id: str, wanted: int) -> None:
        del self.waitlist[waiting_list_id]
        self.waiting_seats -= wanted
        holding = self.holders[user_id]
        holding[1] = None
        if holding == [None, None]:
            del self.holders[user_id]

    def _serve(
        self, user_id: str, waiting_list_id: str, booking_id: str, quantity: int, remaining: int
    ) -> int:
        """Seats of a queue entry join its holder's booking (a new one, or a partial holder's);
        the entry keeps ``remaining`` seats wanted, or leaves. Returns the booking's seats."""
        self._next_sequence(booking_id)
        entry = self.bookings.setdefault(booking_id, [user_id, 0])
        entry[1] += quantity
        self.booked += quantity
        self.holders[user_id][0] = booking_id
        if remaining:
            self.waitlist[waiting_list_id][1] = remaining
            self.waiting_seats -= quantity
        else:
            self._leave_queue(user_id, waiting_list_id, quantity)
        return entry[1]

    def _close_offer(self, offer_id: str, outcome: str) -> int:
        """Settle an open offer; returns its quantity, no longer held."""
        _, waiting_list_id, quantity, _ = self.offers.pop(offer_id)
        del self.offered_entries[waiting_list_id]
        self.held -= quantity
        self.offer_outcomes[offer_id] = outcome
        return quantity

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
            recorded = self.idempotency.get(idempotency_key)
            offered = recorded[1].get("offered", []) if recorded else []
            self._remember(
                idempotency_key,
                request_hash,
                {"user_id": user_id, "released": quantity, "reassigned": [], "offered": offered},
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
        self._serve(user_id, waiting_list_id, booking_id, quantity, remaining)
        self._record_handed_on(
            idempotency_key,
            "reassigned",
            {"userId": user_id, "bookingId": booking_id, "quantity": quantity},
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

    @event("OfferMade", topic="ticketing:Event.OfferMade")
    def _on_offer_made(
        self,
        offer_id: str,
        user_id: str,
        waiting_list_id: str,
        quantity: int,
        expires_at: str,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> None:
        self._next_sequence(offer_id)
        last = next(reversed(self.offers.values()), None)
        self.offers[offer_id] = [user_id, waiting_list_id, quantity, expires_at]
        if last is not None and datetime.fromisoformat(expires_at) < datetime.fromisoformat(
            last[3]
        ):
            # Made by a process whose clock runs behind the one that made the last offer: put
            # it in its place, so that the first offers are always the first due.
            self.offers = dict(
                sorted(self.offers.items(), key=lambda item: datetime.fromisoformat(item[1][3]))
            )
        self.offered_entries[waiting_list_id] = offer_id
        self.offer_users[offer_id] = user_id
        self.held += quantity
        self._record_handed_on(
            idempotency_key,
            "offered",
            {"userId": user_id, "offerId": offer_id, "quantity": quantity},
        )

    @event("OfferAccepted", topic="ticketing:Event.OfferAccepted")
    def _on_offer_accepted(
        self,
        offer_id: str,
        user_id: str,
        waiting_list_id: str,
        booking_id: str,
        quantity: int,
        remaining: int,
        idempotency_key: str | None,
        request_hash: str | None,
        timestamp: datetime | None = None,
    ) -> None:
        self._close_offer(offer_id, ACCEPTED)
        booked = self._serve(user_id, waiting_list_id, booking_id, quantity, remaining)
        if idempotency_key:
            self._remember(
                idempotency_key,
                request_hash,
                {"booking_id": booking_id, "user_id": user_id, "quantity": booked},
                timestamp,
            )

    @event("OfferDeclined", topic="ticketing:Event.OfferDeclined")
    def _on_offer_declined(
        self,
        offer_id: str,
        user_id: str,
        waiting_list_id: str,
        quantity: int,
        waiting_quantity: int,
        declined_by: str,
        idempotency_key: str | None,
        request_hash: str | None,
        timestamp: datetime | None = None,
    ) -> None:
        self._close_offer(offer_id, DECLINED)
        self._leave_queue(user_id, waiting_list_id, waiting_quantity)
        if idempotency_key:
            self._remember(
                idempotency_key,
                request_hash,
                {"user_id": user_id, "released": 0, "reassigned": [], "offered": []},
                timestamp,
            )

    @event("OfferExpired", topic="ticketing:Event.OfferExpired")
    def _on_offer_expired(
        self,
        offer_id: str,
        user_id: str,
        waiting_list_id: str,
        quantity: int,
        waiting_quantity: int,
        expires_at: str,
    ) -> None:
        self._close_offer(offer_id, EXPIRED)
        self._leave_queue(user_id, waiting_list_id, waiting_quantity)
