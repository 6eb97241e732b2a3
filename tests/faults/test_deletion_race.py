"""Accounts deleted while their own bookings are in flight, against a real stack.

Each user fires bookings at every event from several connections and deletes the account
meanwhile. Whatever order the two workers commit them in, no seat may stay with a deleted
account: every booking either lost the race to its token check (401), or was cancelled by
the deletion, or was released by the lane that committed it after the deletion.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from adapters import open_service
from tests.api.servers import HttpClient
from tests.faults.stack import Stack

pytestmark = pytest.mark.slow

USERS = 24
EVENTS = 4


def test_no_seat_stays_with_an_account_deleted_while_its_bookings_were_in_flight(
    stack: Stack,
) -> None:
    _, organizer = stack.user("organizer")
    event_ids = [stack.event(organizer, f"Show {n}", 6) for n in range(EVENTS)]
    users = [stack.user(f"fan{n}") for n in range(USERS)]
    statuses: Counter[tuple[str, int]] = Counter()
    mutex = threading.Lock()

    def book(token: str, event_id: str) -> None:
        client = HttpClient(stack.base_url)
        for _ in range(3):  # again after an answer: one of them may land mid-deletion
            response = client.call("POST", "/api/book", token, json={"eventId": event_id})
            with mutex:
                statuses[("book", response.status_code)] += 1

    def delete(token: str) -> None:
        client = HttpClient(stack.base_url)
        threading.Event().wait(random.uniform(0, 0.05))
        for _ in range(20):  # the read models may lag for a moment under this load: retry
            response = client.call("DELETE", "/api/users/me", token)
            if response.status_code != 503:
                break
            threading.Event().wait(0.2)
        with mutex:
            statuses[("delete", response.status_code)] += 1

    threads = [
        threading.Thread(target=book, args=(token, event_id))
        for _, token in users
        for event_id in event_ids
    ] + [threading.Thread(target=delete, args=(token,)) for _, token in users]
    random.shuffle(threads)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    print(f"\nDELETION RACE outcomes: {dict(statuses)}")

    assert statuses[("delete", 204)] == USERS, statuses
    assert not [key for key in statuses if key[1] >= 500], statuses
    service = open_service(stack.database_url)
    try:
        deleted = {user_id for user_id, _ in users}
        for event_id in event_ids:
            event = service.get_event(event_id)  # replayed from the store
            assert not deleted & set(event.holders), (event_id, deleted & set(event.holders))
            assert event.available == event.total_tickets and not event.waitlist
    finally:
        service.close()
