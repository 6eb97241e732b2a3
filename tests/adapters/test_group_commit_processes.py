"""Two processes appending combined groups over the same events: no deadlock, nothing lost."""

from __future__ import annotations

import multiprocessing
import random
import time
from typing import Any

import psycopg
import pytest

from adapters import open_service
from adapters.database_url import parse_database_url
from tests.adapters import appenders

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EVENTS, TICKETS, PER_PROCESS, THREADS = 60, 10, 1200, 16


def deadlocks(url: str) -> int:
    with psycopg.connect(parse_database_url(url).conninfo(), autocommit=True) as conn:
        return conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def test_two_processes_booking_overlapping_events_in_groups_never_deadlock_or_lose_one(
    postgres_url: str,
) -> None:
    service = open_service(postgres_url, create_tables=True)
    gigs = [service.create_event("organizer", f"Gig {n}", TICKETS).id for n in range(EVENTS)]
    shares = []
    for process in ("p", "q"):  # every event in both shares, in a different order in each
        share = [(gigs[n % EVENTS], f"{process}{n}") for n in range(PER_PROCESS)]
        random.Random(process).shuffle(share)
        shares.append(share)
    deadlocks_before = deadlocks(postgres_url)

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(appenders.ready, range(2), chunksize=1)
        start_at = time.time() + 0.5
        results = pool.starmap_async(
            appenders.book_all, [(postgres_url, share, THREADS, start_at) for share in shares]
        ).get(timeout=300)  # a deadlock that nothing broke would end here

    assert all(result["largest_group"] > 1 for result in results)  # groups did form
    assert deadlocks(postgres_url) == deadlocks_before
    told: dict[str, list[tuple[str, Any, Any]]] = {gig: [] for gig in gigs}
    for event_id, user, booking_id, waiting_list_id in (
        told_one for result in results for told_one in result["told"]
    ):
        assert booking_id or waiting_list_id, f"{user} never got an answer for {event_id}"
        told[event_id].append((user, booking_id, waiting_list_id))
    for gig in gigs:
        event = service.get_event(gig)
        booked = {user for user, booking_id, _ in told[gig] if booking_id}
        waiting = [user for user, booking_id, waiting in told[gig] if waiting and not booking_id]
        assert event.booked == TICKETS == len(booked)  # none oversold, every booking kept
        assert {user for user, _ in event.bookings.values()} == booked
        assert sorted(user for user, _ in event.waitlist.values()) == sorted(waiting)
    service.close()
