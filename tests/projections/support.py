"""Histories for projection tests, and a way to compare read models exactly."""

from __future__ import annotations

import random
from typing import Any

from domain.errors import DomainError
from domain.event import Event
from domain.service import TicketingService
from projections import projector
from projections.db import ReadModelDatabase
from projections.queries import iso
from projections.schema import TABLES

ORGANIZER = "organizer"


def random_history(
    service: TicketingService,
    target_events: int,
    *,
    seed: int = 7,
    events: int = 3,
    users: int = 300,
    save_every: int = 200,
) -> list[str]:
    """Drive random book / cancel / leave / capacity / close commands through real aggregates
    until about ``target_events`` domain events are stored.

    Commands are decided on the live aggregate and saved in chunks, so a large history is
    written quickly while every stored event is a real, rule-checked fact.
    """
    rng = random.Random(seed)
    created = [
        service.create_event(ORGANIZER, f"Event {n}", rng.randint(5, 60), 3) for n in range(events)
    ]
    aggregates = {view.id: service.get_event(view.id) for view in created}
    written = len(created)
    step = 0
    while written < target_events:
        step += 1
        event: Event = aggregates[rng.choice(list(aggregates))]
        user = f"user-{rng.randrange(users)}"
        roll = rng.random()
        try:
            if roll < 0.55:
                event.book(user, rng.randint(1, 3))
            elif roll < 0.75 and event.bookings:
                booking_id = rng.choice(list(event.bookings))
                event.cancel(ORGANIZER, booking_id=booking_id)
            elif roll < 0.88 and event.waitlist:
                waiting_list_id = rng.choice(list(event.waitlist))
                event.cancel(ORGANIZER, waiting_list_id=waiting_list_id)
            elif roll < 0.995:
                event.change_capacity(ORGANIZER, max(event.booked, rng.randint(1, 80)))
            elif not event.closed:
                event.close(ORGANIZER)
        except DomainError:
            pass
        if step % save_every == 0:
            written += sum(len(a.pending_events) for a in aggregates.values())
            service.save(*aggregates.values())
    service.save(*aggregates.values())
    return list(aggregates)


def read_model_rows(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every read-model table, normalised for comparison across drivers."""
    database = ReadModelDatabase(database_url)
    try:
        snapshot = {}
        for table in TABLES:
            key = ", ".join(projector.PRIMARY_KEYS[table])
            rows = database.query(f"SELECT * FROM {table} ORDER BY {key}")
            snapshot[table] = [{k: _normal(v) for k, v in row.items()} for row in rows]
        return snapshot
    finally:
        database.close()


def _normal(value: Any) -> Any:
    text = iso(value) if value is not None and not isinstance(value, (int, str)) else value
    return text


def stored_event_count(service: TicketingService) -> int:
    return service.recorder.max_notification_id() or 0
