"""The work of an offer-mode on-sale, done in real OS processes (started with ``spawn``).

Each process opens its own service on the shared store, as an API worker does, and reads
time from a clock that runs ``SPEED`` times faster than the real one from a common origin:
every process computes the same moment from the same real clock, so they agree on what is
due, and an offer's 60 s (the contract's shortest TTL) pass in two real seconds. Threads act
as users who look at the event (``get_event``, fresh from the store), then book, cancel,
accept, decline, or leave an offer to expire; one thread acts as the organizer changing the
capacity, one as the deadline follower. Callers that get ``ServiceBusy`` try again, as an
HTTP client does on 503. Everything returned is plain data: what each call was answered.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import eventsourcing.domain

from adapters import open_service
from domain.errors import DomainError, ServiceBusy
from domain.service import TicketingService

FAST_HASHING = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST": "1024"}
SPEED = 30.0
CLIENT_RETRIES = 100
ORGANIZER = "organizer"
MAX_TOTAL = 90  # the organizer's raises stop there
LATE = timedelta(seconds=6)  # late users accept with this little left (on the fast clock)


class FastClock:
    """``SPEED`` times the real clock from ``origin`` (a real ``time.time()``)."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.base = datetime.fromtimestamp(origin, UTC)

    def __call__(self) -> datetime:
        return self.base + timedelta(seconds=(time.time() - self.origin) * SPEED)


def ready(_: int) -> None:
    """A no-op task: once it has run, the process has imported everything it needs."""


def _open(url: str, threads: int, origin: float) -> TicketingService:
    eventsourcing.domain.datetime_now_with_tzinfo = FastClock(origin)  # type: ignore[assignment]
    return open_service(url, pool_size=threads + 2, SNAPSHOT_INTERVAL="50", **FAST_HASHING)


def _call(call: Callable[[], Any]) -> dict[str, Any]:
    """Call like a client: retry while busy; the answer, or the refusal's code."""
    for _ in range(CLIENT_RETRIES):
        try:
            return {"ok": call()}
        except ServiceBusy:
            time.sleep(0.02)
        except DomainError as error:
            return {"error": error.code}
    return {"error": "still_busy"}


def _wait_until(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def book_users(
    url: str, event_id: str, requests: list[tuple[str, int]], threads: int, origin: float
) -> dict[str, dict[str, Any]]:
    """Book (user, quantity) for each request at once; each user's answer."""
    service = _open(url, threads, origin)
    _wait_until(origin)

    def book(request: tuple[str, int]) -> tuple[str, dict[str, Any]]:
        user, quantity = request
        answer = _call(lambda: service.book(event_id, user, quantity))
        outcome = answer.get("ok")
        return user, {
            "booking_id": outcome.booking_id if outcome else None,
            "waiting_list_id": outcome.waiting_list_id if outcome else None,
            "error": answer.get("error"),
        }

    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = dict(pool.map(book, requests))
    service.close()
    return answers


def churn(
    url: str,
    event_id: str,
    users: list[str],
    silent: list[str],
    late: list[str],
    threads: int,
    origin: float,
    start_at: float,
    seconds: float,
    seed: int,
    lead: bool,
) -> list[dict[str, Any]]:
    """Users act on what they see until ``seconds`` have passed; with ``lead``, this process
    also runs the organizer and the deadline follower. ``silent`` users never answer an
    offer; ``late`` ones accept theirs only in its last seconds, or after. Every call and its
    answer, in order per thread."""
    service = _open(url, threads, origin)
    kinds = {**{user: "silent" for user in silent}, **{user: "late" for user in late}}
    stop_at = start_at + seconds
    _wait_until(start_at)

    def user_thread(index: int) -> list[dict[str, Any]]:
        rng = random.Random(seed * 1000 + index)
        mine = users[index::threads]
        log: list[dict[str, Any]] = []
        while time.time() < stop_at:
            user = rng.choice(mine)
            event = service.get_event(event_id)
            action = _decide(rng, event, user, kinds.get(user, "prompt"))
            if action is None:
                time.sleep(0.005)
                continue
            name, target, call = action
            log.append({"action": name, "user": user, "target": target, **_call(call)})
        return log

    def _decide(
        rng: random.Random, event: Any, user: str, kind: str
    ) -> tuple[str, str, Callable[[], Any]] | None:
        booking_id, waiting_list_id = event.holding_of(user)
        offer = event.offer_of(user)
        roll = rng.random()
        if offer is not None:
            offer_id = offer[0]
            if kind == "late":  # answers in the last seconds, racing the deadline
                now = eventsourcing.domain.datetime_now_with_tzinfo()
                left = datetime.fromisoformat(offer[2]) - now
                if left > LATE:
                    return None
                name = "accept_past_deadline" if left <= timedelta() else "accept_near_deadline"
                return name, offer_id, lambda: service.accept_offer(offer_id, user)[1]
            if kind == "silent":  # lets it expire, or now and then leaves the queue instead
                if roll < 0.1 and waiting_list_id:
                    return (
                        "cancel_waitlist",
                        waiting_list_id,
                        lambda: service.cancel(user, waiting_list_id=waiting_list_id)[1],
                    )
                return None
            if roll < 0.65:
                return "accept", offer_id, lambda: service.accept_offer(offer_id, user)[1]
            return "decline", offer_id, lambda: service.decline_offer(offer_id, user)[1]
        if booking_id and roll < 0.25:
            return (
                "cancel_booking",
                booking_id,
                lambda: service.cancel(user, booking_id=booking_id)[1],
            )
        if waiting_list_id and roll < 0.05:
            return "cancel_event", event_id, lambda: service.cancel(user, event_id=event_id)[1]
        if not booking_id and not waiting_list_id and roll < 0.3:
            quantity = rng.choice([1, 2])
            return "book", event_id, lambda: service.book(event_id, user, quantity)
        return None

    def organizer() -> list[dict[str, Any]]:
        rng = random.Random(seed)
        log: list[dict[str, Any]] = []
        while time.time() < stop_at:
            time.sleep(0.3)
            event = service.get_event(event_id)
            if rng.random() < 0.7 and event.total_tickets < MAX_TOTAL:
                total = event.total_tickets + rng.choice([1, 2])
            else:  # as low as it may go, or one lower (refused if that is below)
                total = max(1, event.booked + event.held - rng.choice([0, 1]))
            answer = _call(lambda total=total: service.change_capacity(event_id, ORGANIZER, total))
            log.append({"action": "capacity", "user": ORGANIZER, "target": total, **answer})
        return log

    def follower() -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = []
        while time.time() < stop_at:
            time.sleep(0.1)
            answer = _call(lambda: service.settle_due_offers(event_id))
            log.append({"action": "settle", "user": "follower", "target": event_id, **answer})
        return log

    roles: list[Callable[[], list[dict[str, Any]]]] = [
        (lambda index=index: user_thread(index)) for index in range(threads)
    ]
    if lead:
        roles += [organizer, follower]
    results: list[list[dict[str, Any]]] = [[] for _ in roles]

    def run(slot: int) -> None:
        results[slot] = roles[slot]()

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(len(roles))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    service.close()
    return [_plain(entry) for log in results for entry in log]


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    """An answer as plain data (outcomes are dataclasses of the domain)."""
    if "ok" in entry:
        outcome = entry["ok"]
        entry["ok"] = dataclasses.asdict(outcome) if dataclasses.is_dataclass(outcome) else outcome
    return entry
