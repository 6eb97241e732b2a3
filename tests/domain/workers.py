"""Work done in real OS processes by the concurrency tests.

Every function here runs in a child process started with the ``spawn`` method: it opens its
own service on the shared store (as an API worker does), waits for a common start time so
that all processes hit the store together, fans its share of the work out over threads, and
returns plain data. Callers that get ``ServiceBusy`` try again, as an HTTP client does on 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from adapters import open_service
from domain.entries import Idempotency
from domain.errors import DomainError, ServiceBusy
from domain.service import TicketingService

FAST_HASHING = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST": "1024"}
CLIENT_RETRIES = 50

T = TypeVar("T")


def ready(_: int) -> None:
    """A no-op task: once it has run, the process has imported everything it needs."""


def _open(url: str, threads: int) -> TicketingService:
    return open_service(url, pool_size=threads, **FAST_HASHING)


def _like_a_client(call: Callable[[], T], busy: list[int]) -> T:
    """Call, retrying on ServiceBusy with a short pause; ``busy`` counts the retries."""
    for _ in range(CLIENT_RETRIES):
        try:
            return call()
        except ServiceBusy:
            busy.append(1)
            time.sleep(0.05)
    return call()


def _fan_out(threads: int, items: list[Any], work: Callable[[Any], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(work, items))


def _wait_until(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def _stats(service: TicketingService, busy: list[int]) -> dict[str, int]:
    stats = service.lanes.stats
    return {"conflicts": stats.conflicts, "store_errors": stats.store_errors, "busy": len(busy)}


def book_users(
    url: str, event_id: str, users: list[str], threads: int, start_at: float
) -> dict[str, Any]:
    """Book one seat for each user; returns each user's outcome."""
    service = _open(url, threads)
    busy: list[int] = []
    _wait_until(start_at)

    def book(user: str) -> tuple[str, dict[str, Any]]:
        outcome = _like_a_client(lambda: service.book(event_id, user, 1), busy)
        return user, {
            "booking_id": outcome.booking_id,
            "waiting_list_id": outcome.waiting_list_id,
            "position": outcome.position,
        }

    outcomes = dict(_fan_out(threads, users, book))
    stats = _stats(service, busy)
    service.close()
    return {"outcomes": outcomes, **stats}


def cancel_entries(
    url: str, entries: list[tuple[str, str, str]], threads: int, start_at: float
) -> dict[str, Any]:
    """Cancel (user, "booking" | "waitlist", entry id) as the holder; returns each result."""
    service = _open(url, threads)
    busy: list[int] = []
    _wait_until(start_at)

    def cancel(entry: tuple[str, str, str]) -> tuple[str, Any]:
        user, kind, entry_id = entry
        target = {"booking_id": entry_id} if kind == "booking" else {"waiting_list_id": entry_id}
        try:
            _, outcome = _like_a_client(lambda: service.cancel(user, **target), busy)
        except DomainError as error:
            return entry_id, {"error": error.code}
        return entry_id, {"released": outcome.released, "reassigned": outcome.reassigned}

    results = dict(_fan_out(threads, entries, cancel))
    stats = _stats(service, busy)
    service.close()
    return {"results": results, **stats}


def register_same_email(
    url: str, usernames: list[str], email: str, threads: int, start_at: float
) -> list[str]:
    """Register each username with the same email; returns "ok" or the refusal's code."""
    service = _open(url, threads)
    busy: list[int] = []
    _wait_until(start_at)

    def register(username: str) -> str:
        try:
            _like_a_client(
                lambda: service.accounts.register_user(username, email, "password1"), busy
            )
        except DomainError as error:
            return error.code
        return "ok"

    results = _fan_out(threads, usernames, register)
    service.close()
    return results


def book_with_keys(
    url: str, event_id: str, requests: list[tuple[str, str]], threads: int, start_at: float
) -> list[dict[str, Any]]:
    """Book (user, idempotency key) pairs, each with the same request hash per key."""
    service = _open(url, threads)
    busy: list[int] = []
    _wait_until(start_at)

    def book(request: tuple[str, str]) -> dict[str, Any]:
        user, key = request
        idempotency = Idempotency(f"{user}:{key}", f"book:{event_id}:1")
        outcome = _like_a_client(lambda: service.book(event_id, user, 1, idempotency), busy)
        return {"user": user, "booking_id": outcome.booking_id, "replayed": outcome.replayed}

    results = _fan_out(threads, requests, book)
    service.close()
    return results
