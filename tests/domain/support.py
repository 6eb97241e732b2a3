"""Small builders shared by the domain tests: plain objects, no I/O."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from domain.event import Event

ORGANIZER = "organizer"


def new_event(total_tickets: int = 2, max_tickets_per_user: int = 1, name: str = "Gig") -> Event:
    """A fresh ticketed event whose creation event has already been collected."""
    event = Event(
        id=uuid4(),
        name=name,
        total_tickets=total_tickets,
        max_tickets_per_user=max_tickets_per_user,
        organizer_id=ORGANIZER,
    )
    event.collect_events()
    return event


def pending_types(event: Event) -> list[str]:
    """Names of the domain events pending on ``event``, collecting (and so clearing) them."""
    return [type(domain_event).__name__ for domain_event in event.collect_events()]


def queue(event: Event) -> list[tuple[str, int]]:
    """The waiting list as (user, seats still wanted), in queue order."""
    return [(user_id, wanted) for user_id, wanted in event.waitlist.values()]


def bookings(event: Event) -> dict[str, int]:
    """Active bookings as user -> seats."""
    return {user_id: quantity for user_id, quantity in event.bookings.values()}


def payload(domain_event: Any) -> dict[str, Any]:
    """The fields a domain event carries, without the library's bookkeeping."""
    skip = {"originator_id", "originator_version", "timestamp", "originator_topic"}
    return {key: value for key, value in domain_event.__dict__.items() if key not in skip}
