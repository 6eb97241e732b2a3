"""Each domain event type changes exactly the read-model rows it should (no database)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.event import Event
from projections import projector
from projections.projector import Rows
from tests.projections.support import MemoryTables

ORGANIZER = "organizer"


def new_event(
    total: int = 2, per_user: int = 2, waitlist_mode: str = "auto", offer_ttl: int | None = None
) -> tuple[Event, MemoryTables]:
    event = Event(
        id=uuid4(),
        name="Gala",
        total_tickets=total,
        max_tickets_per_user=per_user,
        organizer_id=ORGANIZER,
        waitlist_mode=waitlist_mode,
        offer_ttl_seconds=offer_ttl,
    )
    tables = MemoryTables()
    tables.apply(event.collect_events())
    return event, tables


def changed_keys(rows: Rows) -> dict[str, set]:
    return {table: keys for table, keys in rows.dirty.items() if keys}


def test_event_initialized_creates_one_open_status_row() -> None:
    event, tables = new_event(total=5)
    status = tables.tables["event_status"][str(event.id)]
    assert status["total_tickets"] == 5
    assert status["available_tickets"] == 5
    assert status["booked_tickets"] == 0
    assert status["status"] == "open"
    assert status["version"] == 1
    assert tables.tables["bookings"] == {} and tables.tables["waiting_list"] == {}


def test_ticket_booked_adds_booking_and_holding_and_moves_counters() -> None:
    event, tables = new_event(total=3)
    outcome = event.book("alice", 2)
    rows = tables.apply(event.collect_events())
    event_id = str(event.id)
    assert changed_keys(rows) == {
        "event_status": {event_id},
        "bookings": {outcome.booking_id},
        "user_holdings": {("alice", event_id)},
    }
    status = tables.tables["event_status"][event_id]
    assert (status["booked_tickets"], status["available_tickets"]) == (2, 1)
    booking = tables.tables["bookings"][outcome.booking_id]
    assert (booking["user_id"], booking["quantity"], booking["status"]) == ("alice", 2, "confirmed")
    holding = tables.tables["user_holdings"][("alice", event_id)]
    assert (holding["status"], holding["booking_id"], holding["quantity"]) == (
        "confirmed",
        outcome.booking_id,
        2,
    )


def test_waitlisted_adds_waiting_entry_in_store_order() -> None:
    event, tables = new_event(total=1)
    event.book("alice", 1)
    tables.apply(event.collect_events())
    outcome = event.book("bob", 2)
    rows = tables.apply(event.collect_events())
    event_id = str(event.id)
    assert changed_keys(rows) == {
        "event_status": {event_id},
        "waiting_list": {outcome.waiting_list_id},
        "user_holdings": {("bob", event_id)},
    }
    entry = tables.tables["waiting_list"][outcome.waiting_list_id]
    assert entry["status"] == "waiting"
    assert entry["quantity_waiting"] == 2
    assert entry["queue_seq"] == event.version
    status = tables.tables["event_status"][event_id]
    assert (status["waiting_list_count"], status["waiting_tickets"]) == (1, 2)
    assert tables.tables["user_holdings"][("bob", event_id)]["status"] == "waitlisted"


def test_partial_booking_leaves_one_holding_with_both_halves() -> None:
    event, tables = new_event(total=1)
    outcome = event.book("alice", 2)
    tables.apply(event.collect_events())
    holding = tables.tables["user_holdings"][("alice", str(event.id))]
    assert holding["status"] == "confirmed"
    assert holding["booking_id"] == outcome.booking_id
    assert holding["waiting_list_id"] == outcome.waiting_list_id
    assert holding["waiting_quantity"] == 1


def test_cancelled_and_reassigned_hand_the_seat_to_the_queue_head() -> None:
    event, tables = new_event(total=1)
    first = event.book("alice", 1)
    second = event.book("bob", 1)
    event.book("carol", 1)
    tables.apply(event.collect_events())
    event.cancel("alice", booking_id=first.booking_id)
    rows = tables.apply(event.collect_events())
    event_id = str(event.id)
    bob_booking = event.holders["bob"][0]
    assert changed_keys(rows) == {
        "event_status": {event_id},
        "bookings": {first.booking_id, bob_booking},
        "waiting_list": {second.waiting_list_id},
        "user_holdings": {("alice", event_id), ("bob", event_id)},
    }
    assert tables.tables["bookings"][first.booking_id]["status"] == "cancelled"
    assert tables.tables["bookings"][bob_booking]["source"] == "waitlist"
    assert tables.tables["waiting_list"][second.waiting_list_id]["status"] == "promoted"
    assert tables.tables["user_holdings"][("alice", event_id)]["status"] == "cancelled"
    assert tables.tables["user_holdings"][("bob", event_id)]["status"] == "confirmed"
    status = tables.tables["event_status"][event_id]
    assert (status["booked_tickets"], status["waiting_list_count"]) == (1, 1)


def test_leaving_the_queue_marks_the_entry_left_and_keeps_bookings() -> None:
    event, tables = new_event(total=1)
    event.book("alice", 1)
    waiting = event.book("bob", 1)
    tables.apply(event.collect_events())
    event.cancel("bob", waiting_list_id=waiting.waiting_list_id)
    rows = tables.apply(event.collect_events())
    event_id = str(event.id)
    assert changed_keys(rows) == {
        "event_status": {event_id},
        "waiting_list": {waiting.waiting_list_id},
        "user_holdings": {("bob", event_id)},
    }
    assert tables.tables["waiting_list"][waiting.waiting_list_id]["status"] == "left"
    assert tables.tables["event_status"][event_id]["booked_tickets"] == 1


def test_partial_service_keeps_the_entry_waiting_with_the_rest() -> None:
    event, tables = new_event(total=2, per_user=2)
    first = event.book("alice", 1)
    event.book("bob", 1)
    carol = event.book("carol", 2)
    tables.apply(event.collect_events())
    event.cancel("alice", booking_id=first.booking_id)
    tables.apply(event.collect_events())
    entry = tables.tables["waiting_list"][carol.waiting_list_id]
    assert (entry["status"], entry["quantity_waiting"], entry["quantity_served"]) == (
        "waiting",
        1,
        1,
    )
    assert entry["first_served_at"] is not None and entry["promoted_at"] is None


def test_capacity_changed_moves_total_and_available_only() -> None:
    event, tables = new_event(total=2)
    event.book("alice", 1)
    tables.apply(event.collect_events())
    event.change_capacity(ORGANIZER, 4)
    rows = tables.apply(event.collect_events())
    event_id = str(event.id)
    assert changed_keys(rows) == {"event_status": {event_id}}
    status = tables.tables["event_status"][event_id]
    assert (status["total_tickets"], status["available_tickets"], status["booked_tickets"]) == (
        4,
        3,
        1,
    )


def test_event_closed_changes_only_the_status() -> None:
    event, tables = new_event()
    event.close(ORGANIZER)
    rows = tables.apply(event.collect_events())
    event_id = str(event.id)
    assert changed_keys(rows) == {"event_status": {event_id}}
    assert tables.tables["event_status"][event_id]["status"] == "closed"
    assert tables.tables["event_status"][event_id]["closed_at"] is not None


def test_an_event_already_reflected_is_not_applied_twice() -> None:
    event, tables = new_event(total=3)
    event.book("alice", 1)
    events = event.collect_events()
    tables.apply(events)
    tables.apply(events)
    assert tables.tables["event_status"][str(event.id)]["booked_tickets"] == 1


@pytest.mark.parametrize("kind", projector.EVENT_TYPES)
def test_every_domain_event_type_has_a_projection_rule(kind: str) -> None:
    assert kind == "EventInitialized" or kind in projector.HANDLERS
