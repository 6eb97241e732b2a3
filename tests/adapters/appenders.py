"""Bookings made in real OS processes by the cross-process group commit test.

Runs in a child process started with ``spawn``: it opens its own service on the shared store
(as an API worker does), waits for a common start time, books from many threads and returns
plain data. A booking answered ``ServiceBusy`` is tried again, as an HTTP client does on 503.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from adapters import open_service
from domain.errors import ServiceBusy

CLIENT_RETRIES = 50


def ready(_: int) -> None:
    """A no-op task: once it has run, the process has imported everything it needs."""


def book_all(
    url: str, bookings: list[tuple[str, str]], threads: int, start_at: float
) -> dict[str, Any]:
    """Book one seat per (event id, user); returns what each booking was told."""
    service = open_service(url, pool_size=threads)
    time.sleep(max(0.0, start_at - time.time()))

    def book(booking: tuple[str, str]) -> tuple[str, str, str | None, str | None]:
        event_id, user = booking
        for _ in range(CLIENT_RETRIES):
            try:
                outcome = service.book(event_id, user, 1)
            except ServiceBusy:
                time.sleep(0.05)
                continue
            return event_id, user, outcome.booking_id, outcome.waiting_list_id
        return event_id, user, None, None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        told = list(pool.map(book, bookings))
    groups = service.turns.stats
    service.close()
    return {"told": told, "largest_group": groups.largest, "groups": groups.groups}
