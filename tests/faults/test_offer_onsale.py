"""An offer-mode on-sale under real concurrency: two OS processes, each with its own service
and many threads, on one store (SQLite and PostgreSQL). Fans book, cancel, accept, decline
and let offers expire while the organizer changes the capacity and a deadline follower
settles; time runs fast in the workers (``tests.faults.offer_workers``), so offers of the
contract's shortest TTL fall due during the test.

Afterwards the stored events are replayed one by one, and at every version: no seat
oversold, booked + held + available == total, no user with two bookings or two queue
entries; wherever a command's append may end, no free seat while a queue entry waits without
an offer (no seat lost); every offer settled at most once, after it was made, and expired no
earlier than its deadline; each offer made to an entry only when every entry ahead of it in
the store's queue order had one (FIFO). What each caller was answered must be what the store
says, and an accept sent after the offer's deadline is refused as expired.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from multiprocessing.pool import Pool
from typing import Any
from uuid import UUID

import pytest

from adapters import open_service
from domain.event import Event
from tests.conftest import FAST_HASHING
from tests.domain.test_service_store import state_of
from tests.faults import offer_workers

pytestmark = pytest.mark.slow

PROCESSES = 2
THREADS = 8  # user threads per process; the leading process adds organizer and follower
SEATS = 40
FANS = 120
CHURN_SECONDS = 8.0  # about four offer TTLs on the workers' clock
TTL = 60
SETTLED = ("OfferAccepted", "OfferDeclined", "OfferExpired")
# Pairs of events within one command, between which freed seats are not yet offered on: a
# settlement expiring several offers, and a partial holder's decline before its cancellation.
# (No command's events end just before an OfferMade either: offers are made last.)
MID_COMMAND = {("OfferExpired", "OfferExpired"), ("OfferDeclined", "Cancelled")}
ALLOWED_REFUSALS = {
    "book": set(),
    "cancel_booking": set(),
    "cancel_waitlist": {"already_cancelled"},  # its offer expired meanwhile
    "cancel_event": {"booking_not_found"},  # likewise
    "accept": {"offer_expired", "offer_closed"},
    "accept_near_deadline": {"offer_expired", "offer_closed"},
    "accept_past_deadline": {"offer_expired"},  # and nothing else: the deadline had passed
    "decline": {"offer_expired", "offer_closed"},
    "capacity": {"capacity_below_booked"},
    "settle": set(),
}


@contextmanager
def processes(count: int) -> Iterator[Pool]:
    """Freshly spawned interpreters (no state inherited from the test process), all up."""
    with multiprocessing.get_context("spawn").Pool(count) as pool:
        pool.map(offer_workers.ready, range(count), chunksize=1)
        yield pool


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[n::parts] for n in range(parts)]


@pytest.fixture
def store_url(database_url: str) -> Iterator[str]:
    """A store whose tables exist before any worker process opens it."""
    open_service(database_url, create_tables=True).close()
    yield database_url


def test_an_offer_mode_on_sale_never_oversells_loses_reorders_or_settles_twice(
    store_url: str,
) -> None:
    service = open_service(store_url, **FAST_HASHING)
    event_id = service.create_event(
        "organizer", "On sale", SEATS, 2, waitlist_mode="offer", offer_ttl_seconds=TTL
    ).id
    fans = [f"fan{n:03d}" for n in range(FANS)]
    requests = [(fan, 1 + n % 2) for n, fan in enumerate(fans)]

    with processes(PROCESSES) as pool:
        origin = time.time() + 1.0  # the workers' fast clock starts here, the same for all
        sold = pool.starmap(
            offer_workers.book_users,
            [(store_url, event_id, share, THREADS, origin) for share in split(requests, PROCESSES)],
            chunksize=1,
        )
        start_at = time.time() + 0.5
        shares = split(fans, PROCESSES)
        logs = pool.starmap(
            offer_workers.churn,
            [
                # An eighth of the fans never answer an offer, an eighth answer too late.
                (store_url, event_id, share, share[3::8], share[7::8], THREADS, origin)
                + (start_at, CHURN_SECONDS, n, n == 0)  # n: the seed; the first one leads
                for n, share in enumerate(shares)
            ],
            chunksize=1,
        )

    answers = {fan: answer for share in sold for fan, answer in share.items()}
    assert sorted(answers) == fans and all(a["error"] is None for a in answers.values())
    calls = [call for log in logs for call in log]
    history = list(service.events.get(UUID(event_id)))

    final = replay_checking_every_version(history)
    assert_answers_agree_with_the_store(calls, history, final)
    assert_the_race_had_every_kind_of_move(calls, history)
    loaded = open_service(store_url, **FAST_HASHING)  # latest snapshot + later events
    try:
        assert state_of(loaded.get_event(event_id)) == state_of(final)
    finally:
        loaded.close()
    service.close()


# ------------------------------------------------------------------------------- checks


def replay_checking_every_version(history: list[Any]) -> Event:
    """Replay ``history`` one event at a time, checking what must hold at every version."""
    aggregate: Any = None
    made: dict[str, Any] = {}  # offer id -> its OfferMade
    settled: Counter[str] = Counter()
    queued: list[str] = []  # waitlist ids in the store's Waitlisted order
    first_offered: list[str] = []  # waitlist ids in the order of their first offer
    for index, domain_event in enumerate(history):
        kind = type(domain_event).__name__
        if kind == "Waitlisted":
            queued.append(domain_event.waiting_list_id)
        elif kind == "OfferMade":
            assert_every_entry_ahead_has_an_offer(aggregate, domain_event.waiting_list_id)
            assert domain_event.offer_id not in made, "one offer id made twice"
            made[domain_event.offer_id] = domain_event
            if domain_event.waiting_list_id not in first_offered:
                first_offered.append(domain_event.waiting_list_id)
        elif kind in SETTLED:
            offer = made.get(domain_event.offer_id)
            assert offer is not None, "an offer settled before it was made"
            assert domain_event.user_id == offer.user_id
            settled[domain_event.offer_id] += 1
            deadline = datetime.fromisoformat(offer.expires_at)
            if kind == "OfferExpired":
                assert domain_event.timestamp >= deadline, "expired before its deadline"
        aggregate = domain_event.mutate(aggregate)
        assert_seats_and_holdings(aggregate)
        next_kind = type(history[index + 1]).__name__ if index + 1 < len(history) else None
        if (kind, next_kind) not in MID_COMMAND and next_kind != "OfferMade":
            unoffered = [w for w in aggregate.waitlist if w not in aggregate.offered_entries]
            assert not (aggregate.available > 0 and unoffered), f"seat left idle at {index + 1}"
    assert [n for n in settled.values() if n > 1] == [], "an offer settled twice"
    assert set(made) == set(settled) | set(aggregate.offers)  # the rest are still open
    assert first_offered == sorted(first_offered, key=queued.index), "offers out of FIFO order"
    assert isinstance(aggregate, Event)
    return aggregate


def assert_every_entry_ahead_has_an_offer(event: Event, waiting_list_id: str) -> None:
    order = list(event.waitlist)
    assert waiting_list_id in order and waiting_list_id not in event.offered_entries
    ahead = order[: order.index(waiting_list_id)]
    assert all(entry in event.offered_entries for entry in ahead), "an offer jumped the queue"


def assert_seats_and_holdings(event: Event) -> None:
    assert event.booked + event.held + event.available == event.total_tickets
    assert event.available >= 0 and event.held >= 0 and event.booked <= event.total_tickets
    assert event.booked == sum(quantity for _, quantity in event.bookings.values())
    assert event.held == sum(offer[2] for offer in event.offers.values())
    booking_users = [user for user, _ in event.bookings.values()]
    waiting_users = [user for user, _ in event.waitlist.values()]
    assert len(set(booking_users)) == len(booking_users), "a user with two bookings"
    assert len(set(waiting_users)) == len(waiting_users), "a user with two queue entries"
    for offer_id, (user, waiting_list_id, quantity, _) in event.offers.items():
        assert event.waitlist[waiting_list_id][0] == user
        assert event.offered_entries[waiting_list_id] == offer_id
        assert quantity <= event.waitlist[waiting_list_id][1]


def assert_answers_agree_with_the_store(
    calls: list[dict[str, Any]], history: list[Any], final: Event
) -> None:
    accepted = {e.offer_id: e for e in history if type(e).__name__ == "OfferAccepted"}
    expired = [e.offer_id for e in history if type(e).__name__ == "OfferExpired"]
    reported_expired: list[str] = []
    for call in calls:
        action, target, error = call["action"], call["target"], call.get("error")
        assert error is None or error in ALLOWED_REFUSALS[action], call
        assert action != "accept_past_deadline" or error == "offer_expired", call
        outcome = final.offer_outcomes.get(target)
        if action in ("accept", "accept_near_deadline") and error is None:
            assert outcome == "accepted" and accepted[target].user_id == call["user"]
            assert accepted[target].booking_id == call["ok"]["booking_id"]
        elif action == "decline" and error is None:
            assert outcome == "declined"
        elif error == "offer_expired":
            assert outcome == "expired"
        elif error == "offer_closed":
            assert outcome in ("accepted", "declined")
        if action == "settle":
            reported_expired += call["ok"]
    assert set(reported_expired) <= set(expired)  # the follower's expiries, each stored


def assert_the_race_had_every_kind_of_move(calls: list[dict[str, Any]], history: list[Any]) -> None:
    """Proof that the race was one: each move happened, each settlement kind was stored."""
    succeeded = Counter(call["action"] for call in calls if "error" not in call)
    assert any(call["action"].endswith("_deadline") for call in calls), "nobody answered late"
    for action in ("book", "cancel_booking", "accept", "decline", "capacity", "settle"):
        assert succeeded[action] > 0, f"no {action} succeeded: {succeeded}"
    stored = Counter(type(e).__name__ for e in history)
    for kind in ("OfferMade", *SETTLED, "Cancelled", "CapacityChanged"):
        assert stored[kind] > 0, f"no {kind} stored: {stored}"
