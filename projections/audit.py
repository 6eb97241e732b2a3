"""The auditor's view: stored domain events rendered as facts, and state rebuilt at any point.

These read the event store itself (through the application service), never the read models,
so they are the ground truth the read models are checked against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.errors import EventNotFound
from domain.event import Event
from domain.service import TicketingService
from projections.runner import EVENT_TOPIC_PREFIX

HIDDEN = {"originator_id", "originator_version", "timestamp", "originator_topic", "request_hash"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def render(domain_event: Any) -> dict[str, Any]:
    """One stored event as ``{version, type, occurredAt, data}``."""
    data = {
        camel(name): value
        for name, value in vars(domain_event).items()
        if name not in HIDDEN and not (name == "idempotency_key" and value is None)
    }
    if "idempotencyKey" in data:
        # Keys are stored as "<caller id>:<client key>"; show only the client's part.
        data["idempotencyKey"] = str(data["idempotencyKey"]).split(":", 1)[-1]
    return {
        "version": domain_event.originator_version,
        "type": type(domain_event).__name__,
        "occurredAt": domain_event.timestamp.isoformat(),
        "data": data,
    }


def history(
    service: TicketingService, event_id: str, from_version: int = 1, limit: int = 100
) -> dict[str, Any]:
    events = service.history(event_id, from_version, limit + 1)
    if not events and from_version > 1:
        service.get_event(event_id)  # raises EventNotFound for an unknown event
    items = [render(e) for e in events[:limit]]
    next_version = events[limit].originator_version if len(events) > limit else None
    return {"eventId": event_id, "items": items, "nextVersion": next_version}


def state_at(
    service: TicketingService,
    event_id: str,
    version: int | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The event as it stood at ``version`` or at time ``at``, replayed from the store."""
    aggregate: Event | None = None
    joined: dict[str, str] = {}
    booked: dict[str, str] = {}
    for domain_event in service.history(event_id):
        if version is not None and domain_event.originator_version > version:
            break
        if at is not None and domain_event.timestamp > at:
            break
        aggregate = domain_event.mutate(aggregate)
        occurred = domain_event.timestamp.isoformat()
        if type(domain_event).__name__ == "Waitlisted":
            joined[domain_event.waiting_list_id] = occurred
        elif type(domain_event).__name__ in ("TicketBooked", "Reassigned"):
            booked.setdefault(domain_event.booking_id, occurred)
    if aggregate is None:
        raise EventNotFound("The event did not exist yet at that time.")
    return state_of(aggregate, joined, booked)


def state_of(
    event: Event, joined: dict[str, str] | None = None, booked: dict[str, str] | None = None
) -> dict[str, Any]:
    joined, booked = joined or {}, booked or {}
    return {
        "eventId": str(event.id),
        "name": event.name,
        "totalTickets": event.total_tickets,
        "availableTickets": event.available,
        "bookedTickets": event.booked,
        "waitingListCount": len(event.waitlist),
        "status": "closed" if event.closed else "open",
        "version": event.version,
        "maxTicketsPerUser": event.max_tickets_per_user,
        "organizerId": event.organizer_id,
        "createdAt": event.created_on.isoformat(),
        "bookings": [
            {
                "bookingId": booking_id,
                "userId": user_id,
                "quantity": quantity,
                "bookedAt": booked.get(booking_id),
            }
            for booking_id, (user_id, quantity) in event.bookings.items()
        ],
        "waitlist": [
            {
                "waitingListId": waiting_list_id,
                "userId": user_id,
                "quantity": quantity,
                "position": position,
                "joinedAt": joined.get(waiting_list_id),
            }
            for position, (waiting_list_id, (user_id, quantity)) in enumerate(
                event.waitlist.items(), start=1
            )
        ],
    }


def audit_log(service: TicketingService, after: int = 0, limit: int = 100) -> dict[str, Any]:
    """All stored domain events of ticketed events, in the store's global order."""
    items: list[dict[str, Any]] = []
    cursor = after
    while len(items) <= limit:
        page = service.recorder.select_notifications(cursor + 1, max(limit * 2, 100))
        if not page:
            break
        for notification in page:
            cursor = notification.id
            if notification.topic.startswith(EVENT_TOPIC_PREFIX):
                domain_event = service.mapper.to_domain_event(notification)
                items.append(
                    {
                        "position": notification.id,
                        "eventId": str(domain_event.originator_id),
                        **render(domain_event),
                    }
                )
                if len(items) > limit:
                    break
    has_more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": items[-1]["position"] if has_more and items else None}
