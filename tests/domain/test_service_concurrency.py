"""The write side under real concurrency: several OS processes, each with its own service and
threads, on one store. Whatever the interleaving: never more seats than the event has, no user
with two entries, no lost seat, promotions in the store's FIFO order, one account per email,
one append per idempotency key.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.pool import Pool
from typing import Any
from uuid import UUID

import pytest

from adapters import open_service
from domain.event import Event
from domain.service import TicketingService
from tests.conftest import FAST_HASHING
from tests.domain import workers
from tests.domain.support import ORGANIZER

pytestmark = pytest.mark.slow

PROCESSES = 4
THREADS = 8  # per process; SQLite copes too, its writers just queue on the file lock
TOTAL_TICKETS = 200
USERS = 600
CANCELLED_BOOKINGS = 100
LEAVERS = 40


@contextmanager
def processes(count: int) -> Iterator[Pool]:
    """A pool of freshly spawned interpreters (no state inherited from the test process)."""
    with multiprocessing.get_context("spawn").Pool(count) as pool:
        pool.map(workers.ready, range(count), chunksize=1)  # all up before the clock starts
        yield pool


def together(pool: Pool, work: Callable[..., Any], shares: list[tuple[Any, ...]]) -> list[Any]:
    """Run one share per process, all starting at the same moment."""
    start_at = time.time() + 1.0
    return pool.starmap(work, [(*share, start_at) for share in shares], chunksize=1)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[n::parts] for n in range(parts)]


def stored(service: TicketingService, event_id: str) -> list[Any]:
    return list(service.events.get(UUID(event_id)))


def replay(events: list[Any]) -> Event:
    aggregate = None
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    assert isinstance(aggregate, Event)
    return aggregate


def users_of(events: list[Any], type_name: str) -> list[str]:
    return [e.user_id for e in events if type(e).__name__ == type_name]


def assert_no_oversell_and_one_entry_per_user(event: Event) -> None:
    booking_users = [user for user, _ in event.bookings.values()]
    waiting_users = [user for user, _ in event.waitlist.values()]
    assert event.booked == sum(quantity for _, quantity in event.bookings.values())
    assert event.booked + event.available == event.total_tickets
    assert event.booked <= event.total_tickets
    assert len(set(booking_users)) == len(booking_users)
    assert len(set(waiting_users)) == len(waiting_users)
    assert not set(booking_users) & set(waiting_users)  # quantity 1: nobody is partial


@pytest.fixture
def store_url(database_url: str) -> Iterator[str]:
    """A store whose tables exist before any worker process opens it."""
    open_service(database_url, create_tables=True).close()
    yield database_url


def test_on_sale_then_cancellation_wave_across_processes(store_url: str) -> None:
    service = open_service(store_url, **FAST_HASHING)
    event_id = service.create_event(ORGANIZER, "On sale", total_tickets=TOTAL_TICKETS).id
    users = [f"user{n:03d}" for n in range(USERS)]

    with processes(PROCESSES) as pool:
        booked = together(
            pool,
            workers.book_users,
            [(store_url, event_id, share, THREADS) for share in split(users, PROCESSES)],
        )
        outcomes = {user: o for share in booked for user, o in share["outcomes"].items()}
        after_sale = stored(service, event_id)

        confirmed = users_of(after_sale, "TicketBooked")
        waitlisted = users_of(after_sale, "Waitlisted")
        cancels = [("booking", u, outcomes[u]["booking_id"]) for u in confirmed[::2]]
        leaves = [("waitlist", u, outcomes[u]["waiting_list_id"]) for u in waitlisted[60:140:2]]
        entries = [(user, kind, entry_id) for kind, user, entry_id in cancels + leaves]
        waved = together(
            pool,
            workers.cancel_entries,
            [(store_url, share, THREADS) for share in split(entries, PROCESSES)],
        )

    # The sale: every user got an answer, exactly the seats there were, FIFO positions.
    assert sorted(outcomes) == users
    assert len(confirmed) == TOTAL_TICKETS and len(set(confirmed)) == TOTAL_TICKETS
    assert sorted(confirmed) == sorted(u for u, o in outcomes.items() if o["booking_id"])
    assert len(waitlisted) == USERS - TOTAL_TICKETS
    assert [outcomes[u]["position"] for u in waitlisted] == list(range(1, len(waitlisted) + 1))
    assert_no_oversell_and_one_entry_per_user(replay(after_sale))

    # The wave: every cancellation answered; the freed seats went down the queue in order.
    results = {entry_id: r for share in waved for entry_id, r in share["results"].items()}
    assert len(cancels) == CANCELLED_BOOKINGS and len(leaves) == LEAVERS
    assert all(results[entry_id].get("released") == 1 for _, _, entry_id in cancels)
    left = {user for _, user, entry_id in leaves if "error" not in results[entry_id]}
    assert all(
        results[entry_id] in ({"released": 0, "reassigned": []}, {"error": "already_cancelled"})
        for _, _, entry_id in leaves
    )
    history = stored(service, event_id)
    promoted = users_of(history, "Reassigned")
    still_queued = [user for user in waitlisted if user not in left]
    assert promoted == still_queued[:CANCELLED_BOOKINGS]
    reported = [r["userId"] for result in results.values() for r in result.get("reassigned", [])]
    assert sorted(reported) == sorted(promoted)

    event = replay(history)
    assert_no_oversell_and_one_entry_per_user(event)
    assert event.booked == TOTAL_TICKETS and event.available == 0
    assert [user for user, _ in event.waitlist.values()] == still_queued[CANCELLED_BOOKINGS:]
    loaded = open_service(store_url).get_event(event_id)  # snapshots and all
    assert (loaded.version, loaded.bookings, loaded.waitlist) == (
        event.version,
        event.bookings,
        event.waitlist,
    )
    service.close()


def test_one_email_registered_from_many_processes_at_once(store_url: str) -> None:
    usernames = [f"racer{n}" for n in range(20)]

    with processes(2) as pool:
        shares = together(
            pool,
            workers.register_same_email,
            [(store_url, share, "race@example.com", 10) for share in split(usernames, 2)],
        )

    results = [result for share in shares for result in share]
    assert sorted(results) == ["email_taken"] * 19 + ["ok"]
    service = open_service(store_url, **FAST_HASHING)
    owner = service.accounts.authenticate("race@example.com", "password1")
    assert owner.username in usernames
    service.close()


def test_an_idempotency_key_replayed_from_two_processes_appends_once(store_url: str) -> None:
    service = open_service(store_url, **FAST_HASHING)
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=100).id
    # Ten users, each sending the same keyed request three times from each process.
    requests = [(f"user{n}", "key-1") for n in range(10) for _ in range(3)]

    with processes(2) as pool:
        shares = together(pool, workers.book_with_keys, [(store_url, event_id, requests, 8)] * 2)

    results = [result for share in shares for result in share]
    history = stored(service, event_id)
    assert sorted(users_of(history, "TicketBooked")) == sorted({user for user, _ in requests})
    for n in range(10):
        answers = [r for r in results if r["user"] == f"user{n}"]
        assert len({r["booking_id"] for r in answers}) == 1  # everyone saw the one booking
        assert [r["replayed"] for r in answers].count(False) == 1
    service.close()
