"""Ticketed events replayed from their stored domain events, and the ``event_status`` row of
one: the ground truth the auditor's views show and the read models are checked against."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import takewhile
from typing import Any

from adapters.log_reader import StoreLog
from domain.event import Event
from domain.store import event_history
from domain.views import EventView
from projections.tables import EVENT_STATUS, Row


def stored_until(
    log: StoreLog,
    event_id: str,
    version: int | None = None,
    at: datetime | None = None,
) -> list[Any]:
    """The event's stored domain events, oldest first, up to ``version`` and to moment ``at``."""
    return list(
        takewhile(
            lambda e: (
                (version is None or e.originator_version <= version)
                and (at is None or e.timestamp <= at)
            ),
            event_history(log.events, event_id),
        )
    )


def replay(domain_events: Iterable[Any]) -> Event | None:
    """The aggregate these events make, ignoring snapshots and caches (None for no events)."""
    aggregate: Event | None = None
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def status_row(event: Event) -> Row:
    """``event``'s ``event_status`` row as the projection writes it at the same version."""
    return view_status_row(EventView.of(event))


def view_status_row(event: EventView) -> Row:
    """The ``event_status`` row of the write model's view of an event; the moments of its
    changes (``closed_at``, ``updated_at``) are the projection's, left null."""
    return EVENT_STATUS.row(
        event_id=event.id,
        name=event.name,
        organizer_id=event.organizer_id,
        total_tickets=event.total_tickets,
        available_tickets=event.available_tickets,
        booked_tickets=event.booked_tickets,
        waiting_list_count=event.waiting_list_count,
        waiting_tickets=event.waiting_tickets,
        max_tickets_per_user=event.max_tickets_per_user,
        status="closed" if event.closed else "open",
        version=event.version,
        created_at=event.created_at,
        held_tickets=event.held_tickets,
        waitlist_mode=event.waitlist_mode,
        offer_ttl_seconds=event.offer_ttl_seconds,
    )
