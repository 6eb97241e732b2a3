"""Each offer event changes exactly the read-model rows it should (no database)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from domain.errors import DomainError
from domain.event import Event
from projections.replay import status_row
from tests.projections.support import Clock, MemoryTables, _random_command
from tests.projections.test_projector import ORGANIZER, changed_keys, new_event

MOMENTS = ("created_at", "closed_at", "updated_at")


def offer_event(total: int, per_user: int = 2, ttl: int | None = 600) -> tuple[Event, MemoryTables]:
    return new_event(total=total, per_user=per_user, waitlist_mode="offer", offer_ttl=ttl)


def status_of(event: Event, tables: MemoryTables) -> dict:
    return tables.tables["event_status"][str(event.id)]


def holding_of(event: Event, tables: MemoryTables, user: str) -> dict:
    return tables.tables["user_holdings"][(user, str(event.id))]


def only_offer(event: Event) -> str:
    [offer_id] = event.offers
    return offer_id


@pytest.mark.parametrize(
    ("mode", "ttl", "expected"),
    [
        ("auto", None, ("auto", None)),
        ("offer", None, ("offer", 3600)),
        ("offer", 120, ("offer", 120)),
    ],
)
def test_event_initialized_records_the_mode_and_the_effective_offer_ttl(
    mode: str, ttl: int | None, expected: tuple
) -> None:
    event, tables = new_event(total=3, waitlist_mode=mode, offer_ttl=ttl)
    status = status_of(event, tables)
    assert (status["waitlist_mode"], status["offer_ttl_seconds"]) == expected
    assert status["held_tickets"] == 0


def test_offer_made_holds_the_seats_and_opens_an_offer_row(clock: Clock) -> None:
    event, tables = offer_event(total=2)
    alice = event.book("alice", 2)
    bob = event.book("bob", 1)
    tables.apply(event.collect_events())
    event.cancel("alice", booking_id=alice.booking_id)
    rows = tables.apply(event.collect_events())
    offer_id, event_id = only_offer(event), str(event.id)
    assert changed_keys(rows) == {
        "event_status": {event_id},
        "bookings": {alice.booking_id},
        "user_holdings": {("alice", event_id), ("bob", event_id)},
        "offers": {offer_id},
    }
    status = status_of(event, tables)
    assert (status["booked_tickets"], status["held_tickets"], status["available_tickets"]) == (
        0,
        1,
        1,
    )
    offer = tables.tables["offers"][offer_id]
    assert (offer["user_id"], offer["waiting_list_id"], offer["quantity"]) == (
        "bob",
        bob.waiting_list_id,
        1,
    )
    # Versions: 1 created, 2 alice's booking, 3 bob waitlisted, 4 cancelled, 5 the offer.
    assert (offer["status"], offer["settled_at"], offer["made_version"]) == ("open", None, 5)
    assert offer["made_at"] == clock.now
    assert offer["expires_at"] == clock.now + timedelta(seconds=600)
    holding = holding_of(event, tables, "bob")
    assert (holding["status"], holding["offer_id"], holding["offer_quantity"]) == (
        "offered",
        offer_id,
        1,
    )
    assert holding["expires_at"] == offer["expires_at"]
    assert tables.tables["waiting_list"][bob.waiting_list_id]["status"] == "waiting"


def test_offer_accepted_books_the_held_seats_as_an_offer_booking(clock: Clock) -> None:
    event, tables = offer_event(total=1)
    alice = event.book("alice", 1)
    bob = event.book("bob", 1)
    event.cancel("alice", booking_id=alice.booking_id)
    tables.apply(event.collect_events())
    offer_id = only_offer(event)
    clock.advance(42)
    outcome = event.accept_offer("bob", offer_id)
    tables.apply(event.collect_events())

    status = status_of(event, tables)
    assert (status["booked_tickets"], status["held_tickets"], status["available_tickets"]) == (
        1,
        0,
        0,
    )
    assert (status["waiting_list_count"], status["waiting_tickets"]) == (0, 0)
    booking = tables.tables["bookings"][outcome.booking_id]
    assert (booking["user_id"], booking["quantity"], booking["source"]) == ("bob", 1, "offer")
    offer = tables.tables["offers"][offer_id]
    assert (offer["status"], offer["booking_id"], offer["response_seconds"]) == (
        "accepted",
        outcome.booking_id,
        42.0,
    )
    assert offer["settled_at"] == clock.now
    entry = tables.tables["waiting_list"][bob.waiting_list_id]
    assert (entry["status"], entry["quantity_served"], entry["promoted_at"]) == (
        "promoted",
        1,
        clock.now,
    )
    holding = holding_of(event, tables, "bob")
    assert (holding["status"], holding["booking_id"], holding["offer_id"]) == (
        "confirmed",
        outcome.booking_id,
        None,
    )
    assert (holding["waiting_list_id"], holding["offer_quantity"], holding["expires_at"]) == (
        None,
        None,
        None,
    )


def test_a_partial_holder_s_accepted_offer_joins_its_booking_and_the_rest_keeps_waiting(
    clock: Clock,
) -> None:
    event, tables = offer_event(total=3, per_user=3)
    alice = event.book("alice", 1)
    event.book("carol", 1)
    bob = event.book("bob", 3)  # one seat now, two waiting
    event.cancel("alice", booking_id=alice.booking_id)
    tables.apply(event.collect_events())
    offer_id = only_offer(event)
    holding = holding_of(event, tables, "bob")
    assert (holding["status"], holding["offer_id"], holding["offer_quantity"]) == (
        "confirmed",
        offer_id,
        1,
    )

    event.accept_offer("bob", offer_id)
    tables.apply(event.collect_events())

    booking = tables.tables["bookings"][bob.booking_id]
    assert (booking["quantity"], booking["source"]) == (2, "direct")
    entry = tables.tables["waiting_list"][bob.waiting_list_id]
    assert (entry["status"], entry["quantity_waiting"], entry["quantity_served"]) == (
        "waiting",
        1,
        1,
    )
    holding = holding_of(event, tables, "bob")
    assert (holding["status"], holding["quantity"], holding["waiting_quantity"]) == (
        "confirmed",
        2,
        1,
    )
    assert holding["offer_id"] is None
    status = status_of(event, tables)
    assert (status["held_tickets"], status["waiting_list_count"], status["waiting_tickets"]) == (
        0,
        1,
        1,
    )


def test_a_declined_offer_frees_its_seats_and_its_entry_leaves_as_declined(clock: Clock) -> None:
    event, tables = offer_event(total=1)
    alice = event.book("alice", 1)
    bob = event.book("bob", 1)
    event.book("carol", 1)
    event.cancel("alice", booking_id=alice.booking_id)
    tables.apply(event.collect_events())
    bob_offer = only_offer(event)
    clock.advance(7)
    event.decline_offer("bob", bob_offer)
    tables.apply(event.collect_events())

    offer = tables.tables["offers"][bob_offer]
    assert (offer["status"], offer["declined_by"], offer["response_seconds"]) == (
        "declined",
        "bob",
        7.0,
    )
    entry = tables.tables["waiting_list"][bob.waiting_list_id]
    assert (entry["status"], entry["left_at"]) == ("declined", clock.now)
    assert holding_of(event, tables, "bob")["status"] == "cancelled"
    carol_offer = only_offer(event)  # the freed seat went on to the next head
    assert holding_of(event, tables, "carol")["offer_id"] == carol_offer
    status = status_of(event, tables)
    assert (status["held_tickets"], status["available_tickets"]) == (1, 0)
    assert (status["waiting_list_count"], status["waiting_tickets"]) == (1, 1)


def test_an_expired_offer_records_no_answer_and_its_entry_leaves_as_expired(clock: Clock) -> None:
    event, tables = offer_event(total=2, ttl=60)
    alice = event.book("alice", 2)
    bob = event.book("bob", 2)
    event.cancel("alice", booking_id=alice.booking_id)
    tables.apply(event.collect_events())
    offer_id = only_offer(event)
    clock.advance(61)
    assert event.settle_due_offers() == [offer_id]
    tables.apply(event.collect_events())

    offer = tables.tables["offers"][offer_id]
    assert (offer["status"], offer["settled_at"], offer["response_seconds"]) == (
        "expired",
        clock.now,
        None,
    )
    assert offer["declined_by"] is None and offer["booking_id"] is None
    assert tables.tables["waiting_list"][bob.waiting_list_id]["status"] == "expired"
    assert holding_of(event, tables, "bob")["status"] == "cancelled"
    status = status_of(event, tables)
    assert (status["held_tickets"], status["available_tickets"]) == (0, 2)
    assert (status["waiting_list_count"], status["waiting_tickets"]) == (0, 0)


def test_cancelling_a_partial_holder_with_an_open_offer_declines_it_then_releases_the_booking(
    clock: Clock,
) -> None:
    event, tables = offer_event(total=3, per_user=3)
    alice = event.book("alice", 1)
    event.book("carol", 1)
    bob = event.book("bob", 3)
    event.cancel("alice", booking_id=alice.booking_id)
    tables.apply(event.collect_events())
    offer_id = only_offer(event)
    event.cancel(ORGANIZER, user_id="bob")
    tables.apply(event.collect_events())

    offer = tables.tables["offers"][offer_id]
    assert (offer["status"], offer["declined_by"]) == ("declined", ORGANIZER)
    assert tables.tables["waiting_list"][bob.waiting_list_id]["status"] == "declined"
    assert tables.tables["bookings"][bob.booking_id]["status"] == "cancelled"
    assert holding_of(event, tables, "bob")["status"] == "cancelled"
    status = status_of(event, tables)
    assert (status["booked_tickets"], status["held_tickets"], status["available_tickets"]) == (
        1,
        0,
        2,
    )


def test_held_seats_stay_out_of_available_through_capacity_changes(clock: Clock) -> None:
    event, tables = offer_event(total=2)
    event.book("alice", 2)
    event.book("bob", 1)
    tables.apply(event.collect_events())
    for total in (3, 5, 3):  # a raise offers bob one seat; bob's offer is not made twice
        event.change_capacity(ORGANIZER, total)
        tables.apply(event.collect_events())
        status = status_of(event, tables)
        assert status["total_tickets"] == total
        assert (status["booked_tickets"], status["held_tickets"]) == (2, 1)
        assert status["available_tickets"] == total - 3 == event.available


def test_the_projected_status_follows_the_aggregate_through_random_offer_commands(
    clock: Clock,
) -> None:
    rng = random.Random(5)
    event, tables = offer_event(total=6, per_user=3, ttl=60)
    for _ in range(1500):
        clock.advance(rng.choice([1, 10, 70]))
        try:
            _random_command(rng, event, f"user-{rng.randrange(25)}")
        except DomainError:
            pass
        tables.apply(event.collect_events())
        projected = status_of(event, tables)
        expected = status_row(event)
        assert {k: v for k, v in projected.items() if k not in MOMENTS} == {
            k: v for k, v in expected.items() if k not in MOMENTS
        }
    offers = tables.tables["offers"].values()
    assert {"accepted", "declined", "expired"} <= {offer["status"] for offer in offers}
    assert isinstance(next(iter(offers))["made_at"], datetime)
