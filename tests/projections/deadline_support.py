"""Offers with deadlines for the deadline follower's tests, and what the store says of them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import eventsourcing.domain
import pytest

from adapters.log_reader import open_log
from domain.service import TicketingService
from projections.offer_deadlines import OFFER_CLOSED

TTL = 60  # the contract's shortest offer TTL
EXPIRED_TOPIC = OFFER_CLOSED[-1]
assert EXPIRED_TOPIC.endswith(".OfferExpired")


class Clock:
    """The clock domain events are stamped by, ``offset`` away from the real one: moved
    forward, offers fall due without waiting; moved back, offers made now are due a few real
    seconds later (for processes that read the real clock)."""

    def __init__(self) -> None:
        self.offset = timedelta()
        self._real = eventsourcing.domain.datetime_now_with_tzinfo

    def __call__(self) -> datetime:
        return self._real() + self.offset

    def due_in(self, seconds: float) -> None:
        """Offers made from now on fall due ``seconds`` from now on the real clock."""
        self.offset = timedelta(seconds=seconds - TTL)


def patch_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", clock)
    return clock


def offer_event(
    service: TicketingService, seats: int, waiting: int, name: str = "Show"
) -> tuple[str, list[tuple[str, str]]]:
    """An offer-mode event, sold out to ``seats`` holders with ``waiting`` more in the queue;
    (event id, [(holder, booking id)])."""
    event = service.create_event(
        "organizer", name, seats, waitlist_mode="offer", offer_ttl_seconds=TTL
    )
    holders = []
    for n in range(seats):
        holder = f"{name}-holder{n}"
        holders.append((holder, service.book(event.id, holder, 1).booking_id or ""))
    for n in range(waiting):
        service.book(event.id, f"{name}-fan{n}", 1)
    return event.id, holders


def cancel_into_offers(service: TicketingService, holders: list[tuple[str, str]]) -> list[str]:
    """Each holder cancels; the freed seat is offered to the queue's head. The offer ids."""
    offers = []
    for holder, booking_id in holders:
        _event_id, outcome = service.cancel(holder, booking_id=booking_id)
        offers.extend(offer["offerId"] for offer in outcome.offered)
    return offers


def open_offers(service: TicketingService, event_id: str) -> dict[str, datetime]:
    """The aggregate's open offers and their deadlines."""
    event = service.get_event(event_id)
    return {
        offer_id: datetime.fromisoformat(offer[3]).astimezone(UTC)
        for offer_id, offer in event.offers.items()
    }


def expirations(database_url: str) -> Counter[str]:
    """How many times the store recorded each offer's expiry."""
    log = open_log(database_url, pool_size=1)
    try:
        counted: Counter[str] = Counter()
        start = 1
        while notifications := log.recorder.select_notifications(
            start, 1000, topics=(EXPIRED_TOPIC,)
        ):
            for notification in notifications:
                counted[log.mapper.to_domain_event(notification).offer_id] += 1  # type: ignore[attr-defined]
            start = notifications[-1].id + 1
        return counted
    finally:
        log.close()
