"""What must hold after any fault: the store agrees with what clients were told, no seat is
oversold or lost, the read models equal a replay, and nobody saw a 500 or waited forever."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from adapters import open_service
from adapters.sql import ReadModelDatabase
from api.cli import main as ticketing
from domain.event import Event
from domain.service import TicketingService
from projections.runner import measure_lag
from tests.faults.load import CONNECTION_ERROR, Ledger


@contextmanager
def store(database_url: str) -> Iterator[TicketingService]:
    service = open_service(database_url, pool_size=2)
    try:
        yield service
    finally:
        service.close()


def stored_entries(service: TicketingService, event_id: str) -> tuple[list[str], list[str]]:
    """Booking ids of the stored TicketBooked events, waitlist ids of the Waitlisted ones."""
    bookings: list[str] = []
    waiting: list[str] = []
    for domain_event in service.history(event_id):
        kind = type(domain_event).__name__
        if kind == "TicketBooked":
            bookings.append(domain_event.booking_id)
        elif kind == "Waitlisted":
            waiting.append(domain_event.waiting_list_id)
    return bookings, waiting


def assert_every_acknowledged_booking_stored_exactly_once(
    database_url: str, ledger: Ledger, event_ids: list[str]
) -> None:
    with store(database_url) as service:
        stored_bookings: list[str] = []
        stored_waiting: list[str] = []
        for event_id in event_ids:
            bookings, waiting = stored_entries(service, event_id)
            stored_bookings += bookings
            stored_waiting += waiting
    booking_counts = Counter(stored_bookings)
    waiting_counts = Counter(stored_waiting)
    acknowledged = ledger.acknowledged_bookings()
    acknowledged_waiting = ledger.acknowledged_waitlist_entries()
    assert acknowledged, "the load booked nothing: the test proves nothing"
    assert len(set(acknowledged)) == len(acknowledged), "one booking id answered twice"
    assert {b for b in acknowledged if booking_counts[b] != 1} == set()
    assert {w for w in acknowledged_waiting if waiting_counts[w] != 1} == set()
    assert [b for b, n in booking_counts.items() if n > 1] == []
    # A stored booking nobody was told about needs a request whose answer was lost.
    unacknowledged = (set(stored_bookings) - set(acknowledged)) | (
        set(stored_waiting) - set(acknowledged_waiting)
    )
    assert len(unacknowledged) <= ledger.unknown_book_outcomes(), (
        unacknowledged,
        ledger.summary(),
    )


def assert_no_seat_oversold_or_lost(database_url: str, event_ids: list[str]) -> None:
    """Replay every event version by version; the books balance at each step."""
    with store(database_url) as service:
        for event_id in event_ids:
            aggregate: Event | None = None
            for domain_event in service.history(event_id):
                aggregate = domain_event.mutate(aggregate)
                assert aggregate is not None
                assert 0 <= aggregate.booked <= aggregate.total_tickets
                assert aggregate.booked + aggregate.available == aggregate.total_tickets
                assert aggregate.booked == sum(q for _u, q in aggregate.bookings.values())
                assert aggregate.waiting_seats == sum(q for _u, q in aggregate.waitlist.values())
                holders = [u for u, _q in aggregate.bookings.values()]
                assert len(holders) == len(set(holders)), "a user holds two bookings"
            assert aggregate is not None
            # Freed seats go to the queue in the same append: nobody waits beside a free seat.
            assert not (aggregate.waitlist and aggregate.available), (
                aggregate.available,
                len(aggregate.waitlist),
            )


def wait_until_projected(database_url: str, timeout: float) -> float:
    """Seconds until the read models applied everything stored; fails after ``timeout``."""
    started = time.monotonic()
    with store(database_url) as service:
        database = ReadModelDatabase(database_url)
        try:
            while True:
                lag = measure_lag(service, database)
                if lag.events == 0:
                    return time.monotonic() - started
                assert time.monotonic() - started < timeout, f"still lagging: {lag}"
                time.sleep(0.05)
        finally:
            database.close()


def assert_read_models_equal_a_replay(database_url: str, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert ticketing(["verify"]) == 0


def assert_failures_were_honest(ledger: Ledger, *, connection_errors_allowed: bool) -> None:
    """Never a 500, never a hang: a failure is a 503 with Retry-After, or (only where a worker
    died under the request) a dropped connection."""
    for outcome in ledger.outcomes:
        if outcome.status is not None and outcome.status >= 500:
            assert outcome.status == 503, (outcome.status, outcome.body)
            assert outcome.error_code == "service_busy", outcome.body
            assert outcome.retry_after and int(outcome.retry_after) >= 1, outcome
        elif outcome.status is None:
            assert outcome.failure == CONNECTION_ERROR, f"a client timed out: {outcome}"
            assert connection_errors_allowed, outcome
