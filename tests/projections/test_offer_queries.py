"""The read models' answers about offers, on both stores: booking status, a user's open
offers, the waiting list's offers, and the holdings an account deletion releases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from domain.service import TicketingService
from projections.queries import InvalidCursor, ReadModel, encode_cursor
from projections.runner import ProjectionRunner
from tests.projections.support import Clock

ORGANIZER = "organizer"


@pytest.fixture
def reads(store: TicketingService, database_url: str) -> Iterator[ReadModel]:
    read_model = ReadModel(database_url, log=store)
    yield read_model
    read_model.close()


def project(store: TicketingService, database_url: str) -> None:
    runner = ProjectionRunner(database_url, log=store)
    try:
        runner.process_available()
    finally:
        runner.close()


def offer_event(store: TicketingService, total: int, name: str = "Gala") -> str:
    view = store.create_event(ORGANIZER, name, total, min(total, 3), waitlist_mode="offer")
    return view.id


def moment(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def open_offer(store: TicketingService, event_id: str, user_id: str) -> tuple[str, int, str]:
    offer = store.get_event(event_id).offer_of(user_id)
    assert offer is not None
    return offer


def test_a_user_whose_only_holding_is_an_entry_on_offer_is_offered(
    store: TicketingService, database_url: str, reads: ReadModel, clock: Clock
) -> None:
    event_id = offer_event(store, 1)
    alice = store.book(event_id, "alice", 1)
    store.book(event_id, "bob", 1)
    store.book(event_id, "carol", 1)
    store.cancel("alice", booking_id=alice.booking_id)
    project(store, database_url)
    offer_id, quantity, expires_at = open_offer(store, event_id, "bob")

    bob = reads.booking_status(event_id, "bob")
    carol = reads.booking_status(event_id, "carol")

    assert bob is not None and carol is not None
    assert (bob["status"], bob["offer_id"], bob["offer_quantity"]) == ("offered", offer_id, 1)
    assert moment(bob["expires_at"]) == datetime.fromisoformat(expires_at)
    assert (bob["position"], quantity) == (1, 1)
    assert carol["status"] == "waitlisted"
    assert (carol["offer_id"], carol["offer_quantity"], carol["expires_at"]) == (None, None, None)


def test_a_partial_holder_with_an_open_offer_stays_confirmed_and_carries_the_offer(
    store: TicketingService, database_url: str, reads: ReadModel, clock: Clock
) -> None:
    event_id = offer_event(store, 3)
    alice = store.book(event_id, "alice", 1)
    store.book(event_id, "carol", 1)
    bob = store.book(event_id, "bob", 3)  # one seat, two waiting
    store.cancel("alice", booking_id=alice.booking_id)
    project(store, database_url)
    offer_id, _, expires_at = open_offer(store, event_id, "bob")

    row = reads.booking_status(event_id, "bob")

    assert row is not None
    assert (row["status"], row["booking_id"], row["quantity"]) == ("confirmed", bob.booking_id, 1)
    assert (row["waiting_list_id"], row["waiting_quantity"]) == (bob.waiting_list_id, 2)
    assert (row["offer_id"], row["offer_quantity"]) == (offer_id, 1)
    assert moment(row["expires_at"]) == datetime.fromisoformat(expires_at)


def test_user_offers_pages_the_open_offers_soonest_due_first(
    store: TicketingService, database_url: str, reads: ReadModel, clock: Clock
) -> None:
    expected = []
    for n in range(9):  # offer ids are random: with eight, no other order passes by chance
        event_id = offer_event(store, 1, name=f"Night {n}")
        seat = store.book(event_id, "holder", 1)
        entry = store.book(event_id, "ann", 1)
        store.book(event_id, "bob", 1)
        if n not in (3, 4, 5):  # offers made at one moment, across a page's end: the
            clock.advance(100 - 10 * n)  # offer id orders them
        store.cancel("holder", booking_id=seat.booking_id)
        offer_id, _, expires_at = open_offer(store, event_id, "ann")
        expected.append((expires_at, offer_id, event_id, f"Night {n}", entry.waiting_list_id))
    accepted = expected.pop(0)  # an accepted offer is no longer open
    store.accept_offer(accepted[1], "ann")
    project(store, database_url)

    items, cursor, pages = [], None, 0
    while True:
        page, cursor = reads.user_offers("ann", 3, cursor)
        items += page
        pages += 1
        if cursor is None:
            break

    assert pages == 3
    assert [
        (
            moment(r["expires_at"]),
            r["offer_id"],
            r["event_id"],
            r["event_name"],
            r["waiting_list_id"],
        )
        for r in items
    ] == sorted((datetime.fromisoformat(e[0]), *e[1:]) for e in expected)
    assert [r["quantity"] for r in items] == [1] * 8
    assert reads.user_offers("bob", 50, None) == ([], None)
    for foreign in ("not-a-cursor", encode_cursor("not a moment", items[0]["offer_id"])):
        with pytest.raises(InvalidCursor):
            reads.user_offers("ann", 2, foreign)


def test_the_waiting_list_rows_carry_their_entry_s_open_offer(
    store: TicketingService, database_url: str, reads: ReadModel, clock: Clock
) -> None:
    event_id = offer_event(store, 1)
    alice = store.book(event_id, "alice", 1)
    bob = store.book(event_id, "bob", 1)
    carol = store.book(event_id, "carol", 1)
    store.cancel("alice", booking_id=alice.booking_id)
    project(store, database_url)
    offer_id, _, _ = open_offer(store, event_id, "bob")

    rows, _ = reads.waitlist(event_id, 50, None)

    assert [(r["waiting_list_id"], r["position"], r["offer_id"]) for r in rows] == [
        (bob.waiting_list_id, 1, offer_id),
        (carol.waiting_list_id, 2, None),
    ]
    assert rows[0]["offer_quantity"] == 1 and rows[1]["expires_at"] is None


def test_an_entry_on_offer_counts_among_the_holdings_an_account_releases(
    store: TicketingService, database_url: str, reads: ReadModel, clock: Clock
) -> None:
    event_id = offer_event(store, 1)
    alice = store.book(event_id, "alice", 1)
    store.book(event_id, "bob", 1)
    store.cancel("alice", booking_id=alice.booking_id)
    project(store, database_url)

    holdings, _ = reads.user_holdings("bob")

    assert reads.held_event_ids("bob") == [event_id]
    assert [(h["event_id"], h["status"], h["event_name"]) for h in holdings] == [
        (event_id, "offered", "Gala")
    ]
