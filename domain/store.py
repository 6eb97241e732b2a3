"""The event store as the service keeps it, for the service and the followers of its log.

The store's name is the service's application name (``TicketingService.name``), after which
the library names the store's PostgreSQL tables and its NOTIFY channel: a process that opens
only the log (``adapters.log_reader``) must open it under the same name, without importing
the service (and its password hashing). A ticketed event's history is read the same way by
both: each has the library's ``EventStore``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import EventStore

from domain.errors import EventNotFound
from domain.event import Event

STORE_NAME = "ticketing"


def event_history(
    events: EventStore[UUID], event_id: str, from_version: int = 1, limit: int | None = None
) -> list[Any]:
    """The stored domain events of one ticketed event from ``from_version``, oldest first.

    Raises ``EventNotFound`` when ``event_id`` names no ticketed event (an account, say),
    whichever version is asked from.
    """
    try:
        uuid = UUID(str(event_id))
    except ValueError:
        raise EventNotFound("No such event.") from None
    stored = list(events.get(uuid, gt=from_version - 1, limit=limit))
    first = stored[:1] if from_version <= 1 else list(events.get(uuid, limit=1))
    if not first or getattr(first[0], "originator_topic", None) != Event.TOPIC:
        raise EventNotFound("No such event.")
    return stored
