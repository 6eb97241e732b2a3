"""The auditor's view: stored domain events rendered as facts, and state rebuilt at any point.

These read the event store itself (its log, or the application service in its process),
never the read models, so they are the ground truth the read models are checked against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.log_reader import StoreLog
from domain.errors import EventNotFound
from domain.event import Event
from domain.store import event_history
from projections.replay import replay, status_row, stored_until
from projections.runner import EVENT_TOPIC_PREFIX
from projections.tables import Row

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
    log: StoreLog, event_id: str, from_version: int = 1, limit: int = 100
) -> dict[str, Any]:
    events = event_history(log.events, event_id, from_version, limit + 1)
    items = [render(e) for e in events[:limit]]
    next_version = events[limit].originator_version if len(events) > limit else None
    return {"eventId": event_id, "items": items, "nextVersion": next_version}


def state_at(
    log: StoreLog,
    event_id: str,
    version: int | None = None,
    at: datetime | None = None,
) -> Row:
    """The event as it stood at ``version`` or at time ``at``, replayed from the store: its
    ``event_status`` row with its active ``bookings`` and its ``waitlist`` in queue order
    (each entry with its open offer, if any), each a row named like the read models'."""
    domain_events = stored_until(log, event_id, version, at)
    aggregate = replay(domain_events)
    if aggregate is None:
        raise EventNotFound("The event did not exist yet at that time.")
    joined: dict[str, datetime] = {}
    booked: dict[str, datetime] = {}
    for domain_event in domain_events:
        if type(domain_event).__name__ == "Waitlisted":
            joined[domain_event.waiting_list_id] = domain_event.timestamp
        elif type(domain_event).__name__ in ("TicketBooked", "Reassigned", "OfferAccepted"):
            booked.setdefault(domain_event.booking_id, domain_event.timestamp)
    bookings = [
        {
            "booking_id": booking_id,
            "user_id": user_id,
            "quantity": quantity,
            "booked_at": booked.get(booking_id),
        }
        for booking_id, (user_id, quantity) in aggregate.bookings.items()
    ]
    waitlist = [
        {
            "waiting_list_id": waiting_list_id,
            "user_id": user_id,
            "quantity_waiting": quantity,
            "position": position,
            "joined_at": joined.get(waiting_list_id),
            **_open_offer(aggregate, waiting_list_id),
        }
        for position, (waiting_list_id, (user_id, quantity)) in enumerate(
            aggregate.waitlist.items(), start=1
        )
    ]
    return {**status_row(aggregate), "bookings": bookings, "waitlist": waitlist}


def _open_offer(aggregate: Event, waiting_list_id: str) -> Row:
    """The entry's open offer, named as the read models' waitlist rows name it."""
    offer_id = aggregate.offered_entries.get(waiting_list_id)
    if offer_id is None:
        return {"offer_id": None, "offer_quantity": None, "expires_at": None}
    _, _, quantity, expires_at = aggregate.offers[offer_id]
    return {
        "offer_id": offer_id,
        "offer_quantity": quantity,
        "expires_at": datetime.fromisoformat(expires_at),
    }


def audit_log(log: StoreLog, after: int = 0, limit: int = 100) -> dict[str, Any]:
    """All stored domain events of ticketed events, in the store's global order."""
    items: list[dict[str, Any]] = []
    cursor = after
    while len(items) <= limit:
        page = log.recorder.select_notifications(cursor + 1, max(limit * 2, 100))
        if not page:
            break
        for notification in page:
            cursor = notification.id
            if notification.topic.startswith(EVENT_TOPIC_PREFIX):
                domain_event = log.mapper.to_domain_event(notification)
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
