"""The booking rules of one ticketed event, one test per rule. No I/O: plain ``Event`` objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.entries import Idempotency, parse_entry_id
from domain.errors import (
    AlreadyBooked,
    AlreadyCancelled,
    BookingNotFound,
    CapacityBelowBooked,
    EventClosed,
    IdempotencyKeyReused,
    InvalidCommand,
    NotAllowed,
)
from tests.domain.support import ORGANIZER, bookings, new_event, payload, pending_types, queue

# ------------------------------------------------------------------ capacity and holdings


def test_booking_never_sells_more_seats_than_the_event_has() -> None:
    event = new_event(total_tickets=3, max_tickets_per_user=2)

    event.book("ann", 2)
    second = event.book("bob", 2)
    third = event.book("cat", 1)

    assert event.booked == 3 and event.available == 0
    assert second.quantity == 1 and second.waiting_quantity == 1
    assert third.booking_id is None and third.waiting_quantity == 1
    assert sum(bookings(event).values()) == event.total_tickets


def test_sold_out_booking_joins_the_waiting_list() -> None:
    event = new_event(total_tickets=1)
    event.book("ann", 1)
    pending_types(event)

    outcome = event.book("bob", 1)

    assert outcome.booking_id is None
    assert outcome.waiting_list_id is not None and outcome.position == 1
    assert queue(event) == [("bob", 1)]
    assert pending_types(event) == ["Waitlisted"]


def test_a_user_holds_at_most_one_active_booking_per_event() -> None:
    event = new_event(total_tickets=5)
    event.book("ann", 1)
    pending_types(event)

    with pytest.raises(AlreadyBooked):
        event.book("ann", 1)

    assert bookings(event) == {"ann": 1}
    assert pending_types(event) == []


def test_a_user_holds_at_most_one_waitlist_entry_per_event() -> None:
    event = new_event(total_tickets=1)
    event.book("ann", 1)
    event.book("bob", 1)
    pending_types(event)

    with pytest.raises(AlreadyBooked):
        event.book("bob", 1)

    assert queue(event) == [("bob", 1)]
    assert pending_types(event) == []


def test_a_user_holds_booking_and_waitlist_entry_only_as_halves_of_a_partial_booking() -> None:
    event = new_event(total_tickets=2, max_tickets_per_user=3)

    outcome = event.book("ann", 3)

    booking_id, waiting_list_id = event.holding_of("ann")
    assert (booking_id, waiting_list_id) == (outcome.booking_id, outcome.waiting_list_id)
    assert bookings(event) == {"ann": 2} and queue(event) == [("ann", 1)]
    with pytest.raises(AlreadyBooked):
        event.book("ann", 1)


@pytest.mark.parametrize("quantity", [0, -1, 4])
def test_quantity_must_be_between_one_and_max_tickets_per_user(quantity: int) -> None:
    event = new_event(total_tickets=10, max_tickets_per_user=3)

    with pytest.raises(InvalidCommand) as refused:
        event.book("ann", quantity)

    assert refused.value.details == {"field": "quantity"}
    assert event.holders == {} and pending_types(event) == []


def test_max_tickets_per_user_may_be_booked_in_one_go() -> None:
    event = new_event(total_tickets=10, max_tickets_per_user=3)

    assert event.book("ann", 3).quantity == 3


# ------------------------------------------------------------------------ waiting list


def test_waiting_list_is_strict_fifo() -> None:
    event = new_event(total_tickets=1)
    event.book("ann", 1)
    for user in ("bob", "cat", "dan"):
        event.book(user, 1)

    served = []
    holder = "ann"
    for _ in range(3):
        outcome = event.cancel(holder, user_id=holder)
        holder = outcome.reassigned[0]["userId"]
        served.append(holder)

    assert served == ["bob", "cat", "dan"]


def test_waitlist_positions_count_from_one_in_arrival_order() -> None:
    event = new_event(total_tickets=1)
    event.book("ann", 1)

    positions = [event.book(user, 1).position for user in ("bob", "cat", "dan")]

    assert positions == [1, 2, 3]
    assert [event.position_of(event.holding_of(u)[1] or "") for u in ("bob", "cat", "dan")] == [
        1,
        2,
        3,
    ]


def test_partial_booking_books_the_free_seats_and_waitlists_the_remainder() -> None:
    event = new_event(total_tickets=5, max_tickets_per_user=4)
    event.book("ann", 3)
    pending_types(event)

    outcome = event.book("bob", 4)

    assert (outcome.quantity, outcome.waiting_quantity, outcome.position) == (2, 2, 1)
    assert outcome.booking_id and outcome.waiting_list_id
    assert bookings(event) == {"ann": 3, "bob": 2} and queue(event) == [("bob", 2)]
    assert pending_types(event) == ["TicketBooked", "Waitlisted"]


def test_cancellation_hands_seats_to_first_waitlisted_user() -> None:
    event = new_event(total_tickets=1)
    ann = event.book("ann", 1)
    event.book("bob", 1)
    event.book("cat", 1)

    outcome = event.cancel("ann", booking_id=ann.booking_id)

    assert outcome.released == 1
    assert [(r["userId"], r["quantity"]) for r in outcome.reassigned] == [("bob", 1)]
    assert bookings(event) == {"bob": 1} and queue(event) == [("cat", 1)]
    assert event.holding_of("bob")[0] == outcome.reassigned[0]["bookingId"]


def test_cancellation_and_the_reassignment_it_causes_are_one_append() -> None:
    event = new_event(total_tickets=2, max_tickets_per_user=2)
    ann = event.book("ann", 2)
    event.book("bob", 1)
    event.book("cat", 1)
    pending_types(event)

    event.cancel("ann", booking_id=ann.booking_id)

    assert pending_types(event) == ["Cancelled", "Reassigned", "Reassigned"]


def test_cancelling_by_waiting_list_id_leaves_the_queue_and_keeps_booked_seats() -> None:
    event = new_event(total_tickets=2, max_tickets_per_user=3)
    partial = event.book("ann", 3)
    pending_types(event)

    outcome = event.cancel("ann", waiting_list_id=partial.waiting_list_id)

    assert outcome.released == 0 and outcome.reassigned == []
    assert bookings(event) == {"ann": 2} and queue(event) == []
    assert event.holding_of("ann") == (partial.booking_id, None)
    assert event.waiting_seats == 0
    assert pending_types(event) == ["Cancelled"]


def test_positions_behind_a_leaver_shift_up() -> None:
    event = new_event(total_tickets=1)
    event.book("ann", 1)
    bob = event.book("bob", 1)
    cat = event.book("cat", 1)
    dan = event.book("dan", 1)

    event.cancel("bob", waiting_list_id=bob.waiting_list_id)

    assert queue(event) == [("cat", 1), ("dan", 1)]
    assert event.position_of(cat.waiting_list_id or "") == 1
    assert event.position_of(dan.waiting_list_id or "") == 2


def test_cancelling_by_booking_id_releases_seats_and_drops_own_waitlist_remainder() -> None:
    event = new_event(total_tickets=3, max_tickets_per_user=3)
    event.book("ann", 1)
    bob = event.book("bob", 3)  # 2 booked, 1 waiting
    event.book("cat", 2)  # waits behind bob

    outcome = event.cancel("bob", booking_id=bob.booking_id)

    assert outcome.released == 2
    assert event.holding_of("bob") == (None, None)
    assert [(r["userId"], r["quantity"]) for r in outcome.reassigned] == [("cat", 2)]
    assert bookings(event) == {"ann": 1, "cat": 2} and queue(event) == []


def test_cancelling_by_user_releases_seats_and_drops_own_waitlist_remainder() -> None:
    event = new_event(total_tickets=3, max_tickets_per_user=3)
    event.book("ann", 1)
    event.book("bob", 3)
    event.book("cat", 1)

    outcome = event.cancel("bob", user_id="bob")

    assert outcome.user_id == "bob" and outcome.released == 2
    assert "bob" not in event.holders
    assert bookings(event) == {"ann": 1, "cat": 1} and queue(event) == []
    assert event.available == 1 and event.waiting_seats == 0


def test_freed_seats_never_go_back_to_the_one_who_freed_them() -> None:
    event = new_event(total_tickets=2, max_tickets_per_user=2)
    event.book("ann", 1)
    bob = event.book("bob", 2)  # 1 booked, 1 waiting at the head of the queue

    outcome = event.cancel("bob", booking_id=bob.booking_id)

    assert outcome.reassigned == []
    assert "bob" not in event.holders and event.available == 1


def test_partially_served_entry_keeps_its_place_at_the_head() -> None:
    event = new_event(total_tickets=3, max_tickets_per_user=3)
    ann = event.book("ann", 1)
    bob = event.book("bob", 2)
    event.book("cat", 3)  # wants 3, none free
    event.book("dan", 1)

    outcome = event.cancel("bob", booking_id=bob.booking_id)

    assert [(r["userId"], r["quantity"]) for r in outcome.reassigned] == [("cat", 2)]
    assert queue(event) == [("cat", 1), ("dan", 1)]
    event.cancel("ann", booking_id=ann.booking_id)
    assert bookings(event) == {"cat": 3} and queue(event) == [("dan", 1)]


def test_partial_holders_served_remainder_joins_the_existing_booking() -> None:
    event = new_event(total_tickets=2, max_tickets_per_user=2)
    ann = event.book("ann", 1)
    bob = event.book("bob", 2)

    outcome = event.cancel("ann", booking_id=ann.booking_id)

    assert outcome.reassigned == [{"userId": "bob", "bookingId": bob.booking_id, "quantity": 1}]
    assert event.bookings == {bob.booking_id: ["bob", 2]}
    assert event.holding_of("bob") == (bob.booking_id, None)


# ---------------------------------------------------------------------------- capacity


def test_capacity_raise_promotes_the_waiting_list_fifo() -> None:
    event = new_event(total_tickets=1, max_tickets_per_user=2)
    event.book("ann", 1)
    event.book("bob", 2)
    event.book("cat", 1)
    event.book("dan", 1)
    pending_types(event)

    reassigned, offered = event.change_capacity(ORGANIZER, 4)

    assert [(r["userId"], r["quantity"]) for r in reassigned] == [("bob", 2), ("cat", 1)]
    assert offered == []
    assert queue(event) == [("dan", 1)] and event.available == 0
    assert pending_types(event) == ["CapacityChanged", "Reassigned", "Reassigned"]


def test_capacity_may_be_lowered_to_the_booked_seats_but_not_below() -> None:
    event = new_event(total_tickets=5, max_tickets_per_user=3)
    event.book("ann", 3)
    pending_types(event)

    with pytest.raises(CapacityBelowBooked) as refused:
        event.change_capacity(ORGANIZER, 2)

    assert refused.value.details == {"bookedTickets": 3, "heldTickets": 0}
    assert event.total_tickets == 5 and pending_types(event) == []
    event.change_capacity(ORGANIZER, 3)
    assert event.total_tickets == 3 and event.available == 0


@pytest.mark.parametrize("total_tickets", [0, -5, 1_000_001])
def test_capacity_must_stay_within_limits(total_tickets: int) -> None:
    event = new_event(total_tickets=5)

    with pytest.raises(InvalidCommand):
        event.change_capacity(ORGANIZER, total_tickets)


# ------------------------------------------------------------------------------ closing


def test_closed_event_refuses_bookings() -> None:
    event = new_event(total_tickets=5)
    event.close(ORGANIZER)
    pending_types(event)

    with pytest.raises(EventClosed):
        event.book("ann", 1)

    assert event.holders == {} and pending_types(event) == []


def test_closed_event_still_processes_cancellations_and_promotions() -> None:
    event = new_event(total_tickets=1)
    ann = event.book("ann", 1)
    event.book("bob", 1)
    event.close(ORGANIZER)

    outcome = event.cancel("ann", booking_id=ann.booking_id)

    assert [r["userId"] for r in outcome.reassigned] == ["bob"]
    assert event.change_capacity(ORGANIZER, 2) == ([], [])
    assert event.closed and bookings(event) == {"bob": 1}


def test_closing_twice_is_refused() -> None:
    event = new_event()
    event.close(ORGANIZER)
    pending_types(event)

    with pytest.raises(EventClosed):
        event.close(ORGANIZER)

    assert pending_types(event) == []


# ------------------------------------------------------------------------ authorization


def test_only_the_holder_the_organizer_or_an_admin_may_cancel() -> None:
    event = new_event(total_tickets=3)
    ann = event.book("ann", 1)
    bob = event.book("bob", 1)
    cat = event.book("cat", 1)
    pending_types(event)

    with pytest.raises(NotAllowed):
        event.cancel("mallory", booking_id=ann.booking_id)
    assert pending_types(event) == []

    assert event.cancel("ann", booking_id=ann.booking_id).user_id == "ann"
    assert event.cancel(ORGANIZER, booking_id=bob.booking_id).user_id == "bob"
    assert event.cancel("root", booking_id=cat.booking_id, actor_is_admin=True).user_id == "cat"
    assert event.holders == {}


def test_only_the_organizer_or_an_admin_may_close_or_change_capacity() -> None:
    event = new_event(total_tickets=3)

    with pytest.raises(NotAllowed):
        event.change_capacity("mallory", 10)
    with pytest.raises(NotAllowed):
        event.close("mallory")
    assert pending_types(event) == []

    event.change_capacity("root", 10, actor_is_admin=True)
    event.change_capacity(ORGANIZER, 11)
    event.close("root", actor_is_admin=True)
    assert event.total_tickets == 11 and event.closed


# -------------------------------------------------------------------- unknown vs cancelled


def test_cancelling_a_cancelled_booking_is_already_cancelled() -> None:
    event = new_event(total_tickets=1)
    ann = event.book("ann", 1)
    bob = event.book("bob", 1)
    event.cancel("ann", booking_id=ann.booking_id)
    event.cancel("bob", user_id="bob")
    pending_types(event)

    with pytest.raises(AlreadyCancelled):
        event.cancel("ann", booking_id=ann.booking_id)
    with pytest.raises(AlreadyCancelled):
        event.cancel("bob", waiting_list_id=bob.waiting_list_id)
    assert pending_types(event) == []


def test_cancelling_an_unknown_booking_is_booking_not_found() -> None:
    event = new_event(total_tickets=1)
    other = new_event(total_tickets=1)
    foreign = other.book("ann", 1)
    unissued = f"bk_{event.id.hex}_99"

    for booking_id in ("nonsense", unissued, foreign.booking_id):
        with pytest.raises(BookingNotFound):
            event.cancel("ann", booking_id=booking_id)
    with pytest.raises(BookingNotFound):
        event.cancel("ann", user_id="ann")


def test_booking_and_waitlist_ids_name_their_event() -> None:
    event = new_event(total_tickets=1)

    ann = event.book("ann", 1)
    bob = event.book("bob", 1)

    assert parse_entry_id(ann.booking_id or "") == ("bk", event.id, 1)
    assert parse_entry_id(bob.waiting_list_id or "") == ("wl", event.id, 2)


# -------------------------------------------------------------------------- idempotency


def test_repeated_booking_with_the_same_key_replays_the_outcome_without_new_events() -> None:
    event = new_event(total_tickets=1, max_tickets_per_user=2)
    key = Idempotency("ann:k1", "hash-a")
    first = event.book("ann", 2, key)
    pending_types(event)

    again = event.book("ann", 2, key)

    assert again.replayed and not first.replayed
    assert (again.booking_id, again.quantity) == (first.booking_id, first.quantity)
    assert (again.waiting_list_id, again.waiting_quantity, again.position) == (
        first.waiting_list_id,
        first.waiting_quantity,
        first.position,
    )
    assert pending_types(event) == []


def test_a_key_reused_with_another_request_is_refused() -> None:
    event = new_event(total_tickets=5)
    event.book("ann", 1, Idempotency("ann:k1", "hash-a"))
    pending_types(event)

    with pytest.raises(IdempotencyKeyReused):
        event.book("ann", 1, Idempotency("ann:k1", "hash-b"))
    with pytest.raises(IdempotencyKeyReused):
        event.close(ORGANIZER, idempotency=Idempotency("ann:k1", "hash-c"))
    assert pending_types(event) == []


def test_replayed_command_answers_as_first_even_when_the_state_moved_on() -> None:
    event = new_event(total_tickets=1)
    key = Idempotency("ann:k1", "hash-a")
    first = event.book("ann", 1, key)
    event.close(ORGANIZER)

    again = event.book("ann", 1, key)

    assert again.replayed and again.booking_id == first.booking_id


def test_repeated_cancellation_with_the_same_key_replays_the_reassignment() -> None:
    event = new_event(total_tickets=1)
    ann = event.book("ann", 1)
    event.book("bob", 1)
    key = Idempotency("ann:k2", "hash-a")
    first = event.cancel("ann", booking_id=ann.booking_id, idempotency=key)
    pending_types(event)

    again = event.cancel("ann", booking_id=ann.booking_id, idempotency=key)

    assert again.replayed
    assert (again.user_id, again.released, again.reassigned) == (
        first.user_id,
        first.released,
        first.reassigned,
    )
    assert pending_types(event) == []


def test_repeated_close_and_capacity_change_with_the_same_key_change_nothing() -> None:
    event = new_event(total_tickets=1)
    event.book("ann", 1)
    event.book("bob", 1)
    raise_key = Idempotency("org:k1", "raise")
    close_key = Idempotency("org:k2", "close")
    first_raise = event.change_capacity(ORGANIZER, 2, idempotency=raise_key)
    event.close(ORGANIZER, idempotency=close_key)
    pending_types(event)

    assert event.change_capacity(ORGANIZER, 2, idempotency=raise_key) == first_raise
    event.close(ORGANIZER, idempotency=close_key)

    reassigned, offered = first_raise
    assert reassigned == [{"userId": "bob", "bookingId": reassigned[0]["bookingId"], "quantity": 1}]
    assert offered == []
    assert pending_types(event) == []


# --------------------------------------------------------------------- what events carry


def test_domain_events_carry_user_ids_quantities_and_position() -> None:
    event = new_event(total_tickets=2, max_tickets_per_user=2)
    ann = event.book("ann", 1)
    bob = event.book("bob", 2)
    booked_ann, booked_bob, waitlisted_bob = event.collect_events()

    event.cancel("ann", booking_id=ann.booking_id)
    cancelled, reassigned = event.collect_events()

    no_key = {"idempotency_key": None, "request_hash": None}
    assert payload(booked_ann) == {
        "user_id": "ann",
        "booking_id": ann.booking_id,
        "quantity": 1,
        **no_key,
    }
    assert payload(booked_bob) == {
        "user_id": "bob",
        "booking_id": bob.booking_id,
        "quantity": 1,
        **no_key,
    }
    assert payload(waitlisted_bob) == {
        "user_id": "bob",
        "waiting_list_id": bob.waiting_list_id,
        "quantity": 1,
        "position": 1,
        **no_key,
    }
    assert payload(cancelled) == {
        "user_id": "ann",
        "booking_id": ann.booking_id,
        "quantity": 1,
        "waiting_list_id": None,
        "waiting_quantity": 0,
        "cancelled_by": "ann",
        **no_key,
    }
    assert payload(reassigned) == {
        "user_id": "bob",
        "waiting_list_id": bob.waiting_list_id,
        "booking_id": bob.booking_id,
        "quantity": 1,
        "remaining": 0,
        **no_key,
    }


def test_a_replayed_outcome_is_a_copy_that_cannot_alter_the_record() -> None:
    event = new_event(total_tickets=1)
    ann = event.book("ann", 1)
    event.book("bob", 1)
    key = Idempotency("ann:k3", "hash-a")
    first = event.cancel("ann", booking_id=ann.booking_id, idempotency=key)

    tampered = event.cancel("ann", booking_id=ann.booking_id, idempotency=key)
    tampered.reassigned.append({"userId": "mallory", "bookingId": "x", "quantity": 9})
    raised = event.change_capacity(ORGANIZER, 3, idempotency=Idempotency("o:1", "h"))
    event.change_capacity(ORGANIZER, 3, idempotency=Idempotency("o:1", "h"))[0].append({})

    again = event.cancel("ann", booking_id=ann.booking_id, idempotency=key)
    assert again.reassigned == first.reassigned
    assert event.change_capacity(ORGANIZER, 3, idempotency=Idempotency("o:1", "h")) == raised


def test_an_idempotency_key_is_kept_24_hours_from_the_command_that_used_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import eventsourcing.domain

    start = datetime(2030, 1, 1, tzinfo=UTC)
    clock = {"now": start}
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", lambda: clock["now"])

    def at(hours: int) -> None:
        clock["now"] = start + timedelta(hours=hours)

    event = new_event(total_tickets=5)  # created at hour 0, then quiet for a day and more
    key = Idempotency("ann:k1", "book")
    at(30)
    first = event.book("ann", 1, key)
    at(31)
    event.book("bob", 1, Idempotency("bob:k1", "book"))  # another keyed command, an hour later
    at(32)
    assert event.book("ann", 1, key).booking_id == first.booking_id  # still replayed

    at(55)
    event.book("cat", 1, Idempotency("cat:k1", "book"))  # 25 hours after ann's: hers expires
    with pytest.raises(AlreadyBooked):
        event.book("ann", 1, key)


def test_an_idempotency_key_older_than_24_hours_no_longer_replays_even_on_a_quiet_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import eventsourcing.domain

    start = datetime(2030, 1, 1, tzinfo=UTC)
    clock = {"now": start}
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", lambda: clock["now"])
    event = new_event(total_tickets=5)
    key = Idempotency("ann:k1", "book")
    event.book("ann", 1, key)
    clock["now"] = start + timedelta(hours=25)  # no keyed command since: nothing pruned it

    assert event.replay(key) is None
    with pytest.raises(AlreadyBooked):  # decided as a new request, not replayed
        event.book("ann", 1, key)
