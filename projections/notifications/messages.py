"""Domain events of the store seen as the contract's typed messages.

Each ticketed event's domain event becomes one or more messages (``messages_of``), each with
its ``type``, its ``data`` (camelCase, as it goes on the wire: the event's id and name, the
user, the booking / waitlist / offer ids, quantities, ``expiresAt`` where it applies, and
``position``, the store's notification id, so that a receiver can order and de-duplicate)
and its stable ``message_id``.

``waitlist.left`` fires whenever an entry leaves the queue without being served: cancelled
(``reason: "cancelled"``), or with its offer declined or expired (``"offer_declined"``,
``"offer_expired"``: the whole entry leaves then, so a receiver following the queue alone
sees every departure). An entry that leaves because it was served says so itself
(``waitlist.promoted`` or ``offer.accepted`` with ``remaining`` 0).

Four types concern a person who is mailed when e-mail is configured (``concerned``):
``offer.made``, ``offer.expired``, ``waitlist.promoted``, and ``booking.cancelled`` when
someone else (the organizer or an admin) cancelled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID, uuid5

from domain.event import AUTO, DEFAULT_OFFER_TTL_SECONDS, OFFER

EVENT_CREATED = "event.created"
EVENT_CLOSED = "event.closed"
EVENT_CAPACITY_CHANGED = "event.capacity_changed"
BOOKING_CONFIRMED = "booking.confirmed"
BOOKING_CANCELLED = "booking.cancelled"
WAITLIST_JOINED = "waitlist.joined"
WAITLIST_LEFT = "waitlist.left"
WAITLIST_PROMOTED = "waitlist.promoted"
OFFER_MADE = "offer.made"
OFFER_ACCEPTED = "offer.accepted"
OFFER_DECLINED = "offer.declined"
OFFER_EXPIRED = "offer.expired"
# Every type of the contract, in its order; ``ALL`` subscribes to each, present and future.
TYPES = (
    EVENT_CREATED,
    EVENT_CLOSED,
    EVENT_CAPACITY_CHANGED,
    BOOKING_CONFIRMED,
    BOOKING_CANCELLED,
    WAITLIST_JOINED,
    WAITLIST_LEFT,
    WAITLIST_PROMOTED,
    OFFER_MADE,
    OFFER_ACCEPTED,
    OFFER_DECLINED,
    OFFER_EXPIRED,
)
ALL = "*"
MAILED = frozenset({OFFER_MADE, OFFER_EXPIRED, WAITLIST_PROMOTED, BOOKING_CANCELLED})

# Message ids are uuid5s in this namespace of the domain event's aggregate, version and type.
MESSAGE_NAMESPACE = UUID("5d0f6f0e-4f4b-4b8e-9a51-6f1d3c2a9b71")
MESSAGE_PREFIX = "msg_"


@dataclass(frozen=True)
class EventFacts:
    """What a message tells of its ticketed event beyond the domain event: set at creation,
    never changed."""

    name: str
    organizer_id: str


@dataclass(frozen=True)
class Message:
    message_id: str
    type: str
    event_id: str
    position: int
    occurred_at: datetime
    data: dict[str, Any]
    # The user who is mailed about it (when e-mail is configured); None when nobody is.
    concerned: str | None = None

    @property
    def payload(self) -> str:
        """The request body, exactly as every attempt of every delivery sends it."""
        body = {"type": self.type, "timestamp": self.occurred_at.isoformat(), "data": self.data}
        return json.dumps(body, separators=(",", ":"))


def message_id(aggregate_id: UUID, version: int, type_: str) -> str:
    return MESSAGE_PREFIX + uuid5(MESSAGE_NAMESPACE, f"{aggregate_id}:{version}:{type_}").hex


def facts_of_creation(domain_event: Any) -> EventFacts | None:
    """The facts an ``EventInitialized`` states; None for any other domain event."""
    if type(domain_event).__name__ != "EventInitialized":
        return None
    return EventFacts(domain_event.name, domain_event.organizer_id)


def is_notified(domain_event: Any) -> bool:
    """Whether ``domain_event`` (of any aggregate) is one that messages are made of."""
    return type(domain_event).__name__ in _SHAPES and hasattr(domain_event, "originator_id")


def messages_of(domain_event: Any, position: int, event: EventFacts) -> list[Message]:
    """The messages of one stored domain event of the ticketed event ``event``."""
    shape = _SHAPES.get(type(domain_event).__name__)
    if shape is None:
        return []
    event_id = str(domain_event.originator_id)
    version = domain_event.originator_version
    return [
        Message(
            message_id=message_id(domain_event.originator_id, version, typed.type),
            type=typed.type,
            event_id=event_id,
            position=position,
            occurred_at=domain_event.timestamp,
            data={
                "eventId": event_id,
                "eventName": event.name,
                **typed.fields,
                "version": version,
                "position": position,
            },
            concerned=typed.concerned,
        )
        for typed in shape(domain_event)
    ]


class Typed(NamedTuple):
    """One message a domain event makes, before the fields every message carries."""

    type: str
    fields: dict[str, Any]
    concerned: str | None = None


Shape = Callable[[Any], list[Typed]]


def _created(e: Any) -> list[Typed]:
    fields = {
        "userId": e.organizer_id,
        "organizerId": e.organizer_id,
        "totalTickets": e.total_tickets,
        "maxTicketsPerUser": e.max_tickets_per_user,
        # Events stored before offers existed lack both fields: they are in auto mode.
        "waitlistMode": getattr(e, "waitlist_mode", AUTO),
    }
    if fields["waitlistMode"] == OFFER:
        fields["offerTtlSeconds"] = e.offer_ttl_seconds or DEFAULT_OFFER_TTL_SECONDS
    return [Typed(EVENT_CREATED, fields)]


def _closed(e: Any) -> list[Typed]:
    return [Typed(EVENT_CLOSED, {"userId": e.closed_by, "closedBy": e.closed_by})]


def _capacity_changed(e: Any) -> list[Typed]:
    fields = {
        "userId": e.changed_by,
        "changedBy": e.changed_by,
        "previousTotal": e.previous_total,
        "totalTickets": e.total_tickets,
    }
    return [Typed(EVENT_CAPACITY_CHANGED, fields)]


def _booked(e: Any) -> list[Typed]:
    fields = {"userId": e.user_id, "bookingId": e.booking_id, "quantity": e.quantity}
    return [Typed(BOOKING_CONFIRMED, fields)]


def _cancelled(e: Any) -> list[Typed]:
    typed = []
    if e.booking_id:
        fields = {
            "userId": e.user_id,
            "bookingId": e.booking_id,
            "quantity": e.quantity,
            "cancelledBy": e.cancelled_by,
        }
        by_someone_else = e.user_id if e.cancelled_by != e.user_id else None
        typed.append(Typed(BOOKING_CANCELLED, fields, by_someone_else))
    if e.waiting_list_id:
        left = _left(e.user_id, e.waiting_list_id, e.waiting_quantity, "cancelled")
        left.fields["cancelledBy"] = e.cancelled_by
        typed.append(left)
    return typed


def _waitlisted(e: Any) -> list[Typed]:
    fields = {
        "userId": e.user_id,
        "waitingListId": e.waiting_list_id,
        "quantity": e.quantity,
        # The entry's place in the queue; ``position`` is the store's.
        "queuePosition": e.position,
    }
    return [Typed(WAITLIST_JOINED, fields)]


def _reassigned(e: Any) -> list[Typed]:
    fields = {
        "userId": e.user_id,
        "waitingListId": e.waiting_list_id,
        "bookingId": e.booking_id,
        "quantity": e.quantity,
        "remaining": e.remaining,
    }
    return [Typed(WAITLIST_PROMOTED, fields, e.user_id)]


def _offer_made(e: Any) -> list[Typed]:
    return [Typed(OFFER_MADE, _offer(e) | {"expiresAt": e.expires_at}, e.user_id)]


def _offer_accepted(e: Any) -> list[Typed]:
    fields = _offer(e) | {"bookingId": e.booking_id, "remaining": e.remaining}
    return [Typed(OFFER_ACCEPTED, fields)]


def _offer_declined(e: Any) -> list[Typed]:
    fields = _offer(e) | {"waitingQuantity": e.waiting_quantity, "declinedBy": e.declined_by}
    return [
        Typed(OFFER_DECLINED, fields),
        _left(e.user_id, e.waiting_list_id, e.waiting_quantity, "offer_declined"),
    ]


def _offer_expired(e: Any) -> list[Typed]:
    fields = _offer(e) | {"waitingQuantity": e.waiting_quantity, "expiresAt": e.expires_at}
    return [
        Typed(OFFER_EXPIRED, fields, e.user_id),
        _left(e.user_id, e.waiting_list_id, e.waiting_quantity, "offer_expired"),
    ]


def _offer(e: Any) -> dict[str, Any]:
    return {
        "userId": e.user_id,
        "offerId": e.offer_id,
        "waitingListId": e.waiting_list_id,
        "quantity": e.quantity,
    }


def _left(user_id: str, waiting_list_id: str, quantity: int, reason: str) -> Typed:
    fields = {
        "userId": user_id,
        "waitingListId": waiting_list_id,
        "quantity": quantity,
        "reason": reason,
    }
    return Typed(WAITLIST_LEFT, fields)


_SHAPES: dict[str, Shape] = {
    "EventInitialized": _created,
    "EventClosed": _closed,
    "CapacityChanged": _capacity_changed,
    "TicketBooked": _booked,
    "Cancelled": _cancelled,
    "Waitlisted": _waitlisted,
    "Reassigned": _reassigned,
    "OfferMade": _offer_made,
    "OfferAccepted": _offer_accepted,
    "OfferDeclined": _offer_declined,
    "OfferExpired": _offer_expired,
}
