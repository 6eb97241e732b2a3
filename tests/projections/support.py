"""Histories for projection tests, and a way to compare read models exactly."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from adapters.sql import ReadModelDatabase
from bench.history import ORGANIZER, random_history
from domain.errors import DomainError
from domain.event import Event
from domain.service import TicketingService
from projections import projector
from projections.projector import Rows
from projections.queries import iso
from projections.tables import READ_MODELS, Table


class Clock:
    """The clock domain events are stamped by and offers fall due by, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MemoryTables:
    """An in-memory stand-in for the tables, keyed like the real ones."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, dict]] = {table.name: {} for table in READ_MODELS}

    def load(self, table: Table, keys: list[Any]) -> dict[Any, dict]:
        rows = self.tables[table.name]
        return {key: dict(rows[key]) for key in keys if key in rows}

    def apply(self, events: list[Any]) -> Rows:
        rows = Rows(self.load)
        for domain_event in events:
            projector.apply(rows, domain_event)
        for table in READ_MODELS:
            for row in rows.changed(table):
                self.tables[table.name][table.key(row)] = dict(row)
        return rows


def offer_history(
    service: TicketingService,
    target_events: int,
    clock: Clock,
    *,
    seed: int = 11,
    events: int = 3,
    users: int = 60,
    save_every: int = 50,
) -> list[str]:
    """Random commands on offer-mode events (and one in auto mode) while time passes: books,
    cancellations, capacity changes, accepted, declined and expired offers, closes."""
    rng = random.Random(seed)
    created = [
        service.create_event(
            ORGANIZER,
            f"Offers {n}",
            rng.randint(3, 12),
            3,
            waitlist_mode="offer",
            offer_ttl_seconds=rng.choice([None, 60, 600]),
        )
        for n in range(events)
    ]
    created.append(service.create_event(ORGANIZER, "Auto", 5, 3))
    aggregates = {view.id: service.get_event(view.id) for view in created}
    written = len(created)
    step = 0
    while written < target_events:
        step += 1
        clock.advance(rng.choice([1, 5, 30, 90, 700]))
        event: Event = aggregates[rng.choice(list(aggregates))]
        try:
            _random_command(rng, event, f"user-{rng.randrange(users)}")
        except DomainError:
            pass
        if step % save_every == 0:
            written += sum(len(a.pending_events) for a in aggregates.values())
            service.save(*aggregates.values())
    for event in aggregates.values():  # end with offers open wherever a queue waits
        if event.waitlist and event.bookings and event.waitlist_mode == "offer":
            event.cancel(ORGANIZER, booking_id=next(iter(event.bookings)))
    service.save(*aggregates.values())
    return list(aggregates)


def _random_command(rng: random.Random, event: Event, user: str) -> None:
    roll = rng.random()
    if roll < 0.4:
        event.book(user, rng.randint(1, 3))
    elif roll < 0.55 and event.bookings:
        event.cancel(ORGANIZER, booking_id=rng.choice(list(event.bookings)))
    elif roll < 0.62 and event.waitlist:
        event.cancel(ORGANIZER, waiting_list_id=rng.choice(list(event.waitlist)))
    elif roll < 0.77 and event.offers:
        offer_id = rng.choice(list(event.offers))
        event.accept_offer(event.offers[offer_id][0], offer_id)
    elif roll < 0.85 and event.offers:
        offer_id = rng.choice(list(event.offers))
        event.decline_offer(event.offers[offer_id][0], offer_id)
    elif roll < 0.9:
        event.settle_due_offers()
    elif roll < 0.995:
        event.change_capacity(ORGANIZER, max(event.booked + event.held, rng.randint(1, 15)))
    elif not event.closed and rng.random() < 0.2:  # a closed event drains: close rarely
        event.close(ORGANIZER)


def read_model_rows(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every read-model table, normalised for comparison across drivers."""
    database = ReadModelDatabase(database_url)
    try:
        snapshot = {}
        for table in READ_MODELS:
            key = ", ".join(table.primary_key)
            rows = database.query(f"SELECT * FROM {table.name} ORDER BY {key}")
            snapshot[table.name] = [{k: _normal(v) for k, v in row.items()} for row in rows]
        return snapshot
    finally:
        database.close()


def _normal(value: Any) -> Any:
    """Moments as ISO-8601 text, as SQLite stores them; PostgreSQL returns datetimes."""
    return iso(value) if isinstance(value, datetime) else value


def stored_event_count(service: TicketingService) -> int:
    return service.recorder.max_notification_id() or 0


__all__ = [
    "Clock",
    "MemoryTables",
    "offer_history",
    "random_history",
    "read_model_rows",
    "stored_event_count",
]
