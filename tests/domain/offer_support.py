"""Builders for the offer-mode domain tests: plain events and a clock the tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import eventsourcing.domain
import pytest

from domain.event import OFFER, Event
from tests.domain.support import ORGANIZER

START = datetime(2030, 1, 1, tzinfo=UTC)
TTL = 60  # the contract's shortest offer TTL


class Clock:
    """The clock domain events are stamped by; it stands still until moved."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def patch_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", clock)
    return clock


def offer_event(
    total_tickets: int = 1, max_tickets_per_user: int = 1, ttl: int | None = TTL
) -> Event:
    """A fresh offer-mode event whose creation event has already been collected."""
    event = Event(
        id=uuid4(),
        name="Gig",
        total_tickets=total_tickets,
        max_tickets_per_user=max_tickets_per_user,
        organizer_id=ORGANIZER,
        waitlist_mode=OFFER,
        offer_ttl_seconds=ttl,
    )
    event.collect_events()
    return event


def sold_out(event: Event, holders: list[str], waiting: list[str], quantity: int = 1) -> None:
    """Each holder books one seat, then each waiting user queues for ``quantity``; collected."""
    for user in holders:
        event.book(user, 1)
    for user in waiting:
        event.book(user, quantity)
    event.collect_events()


def offered_to(event: Event) -> list[tuple[str, int]]:
    """The open offers as (user, seats held), in deadline order."""
    return [(user_id, quantity) for user_id, _, quantity, _ in event.offers.values()]


def offer_id_of(event: Event, user_id: str) -> str:
    offer = event.offer_of(user_id)
    assert offer is not None, f"{user_id} has no open offer"
    return offer[0]


def assert_seats_add_up(event: Event) -> None:
    """Every seat is booked, held for an open offer or available, and nothing else."""
    assert event.booked + event.held + event.available == event.total_tickets
    assert event.booked == sum(quantity for _, quantity in event.bookings.values())
    assert event.held == sum(offer[2] for offer in event.offers.values())
    assert event.available >= 0 and event.held >= 0


class ShiftedClock:
    """The real clock ``offset`` ahead: time runs as usual, and jumps when moved (for a
    store, whose other timestamps come from the real clock)."""

    def __init__(self) -> None:
        self.offset = timedelta()
        self._real = eventsourcing.domain.datetime_now_with_tzinfo

    def __call__(self) -> datetime:
        return self._real() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def patch_shifted_clock(monkeypatch: pytest.MonkeyPatch) -> ShiftedClock:
    clock = ShiftedClock()
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", clock)
    return clock
