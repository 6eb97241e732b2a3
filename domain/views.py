"""What a command on a ticketed event answers with: the event as that command left it.

Its own module, light to import, so that the read side can derive the same status from a
replayed aggregate without loading the write service (and its password hashing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.event import DEFAULT_OFFER_TTL_SECONDS, OFFER, Event


def effective_offer_ttl(waitlist_mode: str, offer_ttl_seconds: int | None) -> int | None:
    """How long an event's offers stay open: None in auto mode (it makes none)."""
    if waitlist_mode != OFFER:
        return None
    return offer_ttl_seconds or DEFAULT_OFFER_TTL_SECONDS


@dataclass(frozen=True)
class EventView:
    """The write model's own view of an event, as of the version just committed."""

    id: str
    name: str
    total_tickets: int
    available_tickets: int
    booked_tickets: int
    waiting_list_count: int
    waiting_tickets: int
    max_tickets_per_user: int
    organizer_id: str
    closed: bool
    created_at: datetime
    version: int
    held_tickets: int
    waitlist_mode: str
    offer_ttl_seconds: int | None

    @classmethod
    def of(cls, event: Event) -> EventView:
        return cls(
            id=str(event.id),
            name=event.name,
            total_tickets=event.total_tickets,
            available_tickets=event.available,
            booked_tickets=event.booked,
            waiting_list_count=len(event.waitlist),
            waiting_tickets=event.waiting_seats,
            max_tickets_per_user=event.max_tickets_per_user,
            organizer_id=event.organizer_id,
            closed=event.closed,
            created_at=event.created_on,
            version=event.version,
            held_tickets=event.held,
            waitlist_mode=event.waitlist_mode,
            offer_ttl_seconds=effective_offer_ttl(event.waitlist_mode, event.offer_ttl_seconds),
        )
