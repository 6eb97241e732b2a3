"""Ticketed-event commands through ``TicketingService`` on each store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from domain.entries import Idempotency
from domain.errors import (
    AlreadyBooked,
    AlreadyCancelled,
    BookingNotFound,
    CapacityBelowBooked,
    EventClosed,
    EventNotFound,
    IdempotencyKeyReused,
    InvalidCommand,
    NotAllowed,
)
from domain.event import Event
from domain.service import TicketingService
from tests.domain.support import ORGANIZER, bookings, queue


def stored_types(service: TicketingService, event_id: str) -> list[str]:
    return [type(domain_event).__name__ for domain_event in service.history(event_id)]


def test_create_event_validates_and_stores_the_initialisation(service: TicketingService) -> None:
    with pytest.raises(InvalidCommand):
        service.create_event(ORGANIZER, "Gig", total_tickets=5, max_tickets_per_user=6)

    view = service.create_event(ORGANIZER, "Gig", total_tickets=5, max_tickets_per_user=2)

    assert (view.total_tickets, view.available_tickets, view.booked_tickets) == (5, 5, 0)
    assert (view.organizer_id, view.closed, view.version) == (ORGANIZER, False, 1)
    assert stored_types(service, view.id) == ["EventInitialized"]


def test_booking_flow_confirms_waitlists_and_promotes_on_cancel(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2, max_tickets_per_user=2).id

    ann = service.book(event_id, "ann", 1)
    bob = service.book(event_id, "bob", 2)
    cat = service.book(event_id, "cat", 1)
    target, cancelled = service.cancel("ann", booking_id=ann.booking_id)

    assert (ann.quantity, bob.quantity, bob.waiting_quantity, cat.position) == (1, 1, 1, 2)
    assert target == event_id and cancelled.released == 1
    assert cancelled.reassigned == [{"userId": "bob", "bookingId": bob.booking_id, "quantity": 1}]
    event = service.get_event(event_id)
    assert bookings(event) == {"bob": 2} and queue(event) == [("cat", 1)]
    assert stored_types(service, event_id) == [
        "EventInitialized",
        "TicketBooked",
        "TicketBooked",
        "Waitlisted",
        "Waitlisted",
        "Cancelled",
        "Reassigned",
    ]


def test_a_returned_booking_id_can_be_cancelled_at_once(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    booking_id = service.book(event_id, "ann").booking_id

    _, outcome = service.cancel("ann", booking_id=booking_id)

    assert outcome.user_id == "ann" and outcome.released == 1


def test_cancel_by_event_id_cancels_the_callers_own_holding(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    service.book(event_id, "ann")
    service.book(event_id, "bob")

    _, outcome = service.cancel("bob", event_id=event_id)

    assert outcome.user_id == "bob" and outcome.released == 0
    assert service.get_event(event_id).waitlist == {}
    with pytest.raises(BookingNotFound):
        service.cancel("bob", event_id=event_id)


def test_cancel_needs_exactly_one_target(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    booking_id = service.book(event_id, "ann").booking_id

    with pytest.raises(InvalidCommand):
        service.cancel("ann")
    with pytest.raises(InvalidCommand):
        service.cancel("ann", booking_id=booking_id, event_id=event_id)


def test_unknown_ids_are_not_found_and_spent_ids_already_cancelled(
    service: TicketingService,
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    booking_id = service.book(event_id, "ann").booking_id or ""
    service.cancel("ann", booking_id=booking_id)

    with pytest.raises(AlreadyCancelled):
        service.cancel("ann", booking_id=booking_id)
    missing_event = booking_id.replace(booking_id.split("_")[1], "0" * 32)
    for unknown in ("garbage", missing_event):
        with pytest.raises(BookingNotFound):
            service.cancel("ann", booking_id=unknown)
    with pytest.raises(EventNotFound):
        service.book("not-a-uuid", "ann")
    with pytest.raises(EventNotFound):
        service.book("00000000-0000-0000-0000-000000000000", "ann")


def test_domain_refusals_surface_unchanged(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id
    booking_id = service.book(event_id, "ann").booking_id
    service.book(event_id, "bob")

    with pytest.raises(AlreadyBooked):
        service.book(event_id, "ann")
    with pytest.raises(NotAllowed):
        service.cancel("mallory", booking_id=booking_id)
    with pytest.raises(NotAllowed):
        service.close_event(event_id, "mallory")
    with pytest.raises(CapacityBelowBooked):
        service.change_capacity(event_id, ORGANIZER, 1)
    assert stored_types(service, event_id) == ["EventInitialized", "TicketBooked", "TicketBooked"]


def test_capacity_raise_and_close_return_the_committed_view(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    service.book(event_id, "ann")
    service.book(event_id, "bob")

    raised = service.change_capacity(event_id, ORGANIZER, 3)
    closed = service.close_event(event_id, "root", actor_is_admin=True)

    assert (raised.total_tickets, raised.booked_tickets, raised.waiting_list_count) == (3, 2, 0)
    assert closed.closed and closed.version == raised.version + 1
    with pytest.raises(EventClosed):
        service.book(event_id, "cat")
    with pytest.raises(EventClosed):
        service.close_event(event_id, ORGANIZER)


def test_get_event_at_a_version_rebuilds_the_past(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    service.book(event_id, "ann")
    service.book(event_id, "bob")

    past = service.get_event(event_id, version=2)

    assert bookings(past) == {"ann": 1} and past.waitlist == {}


def test_idempotent_booking_replays_without_a_second_append(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=3).id
    key = Idempotency("ann:key-1", "book-1")

    first = service.book(event_id, "ann", 1, key)
    again = service.book(event_id, "ann", 1, key)

    assert again.replayed and again.booking_id == first.booking_id
    assert stored_types(service, event_id).count("TicketBooked") == 1
    with pytest.raises(IdempotencyKeyReused):
        service.book(event_id, "ann", 2, Idempotency("ann:key-1", "book-2"))


def test_idempotent_create_maps_a_retry_onto_the_same_event(service: TicketingService) -> None:
    key = Idempotency("org:create-1", "create-a")

    first = service.create_event(ORGANIZER, "Gig", 10, idempotency=key)
    again = service.create_event(ORGANIZER, "Gig", 10, idempotency=key)

    assert again.id == first.id
    with pytest.raises(IdempotencyKeyReused):
        service.create_event(ORGANIZER, "Other", 10, idempotency=Idempotency(key.key, "b"))


def test_idempotent_cancel_capacity_and_close_replay(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    booking_id = service.book(event_id, "ann").booking_id
    service.book(event_id, "bob")
    cancel_key = Idempotency("ann:c", "cancel")

    _, first = service.cancel("ann", booking_id=booking_id, idempotency=cancel_key)
    _, again = service.cancel("ann", booking_id=booking_id, idempotency=cancel_key)
    raised = service.change_capacity(event_id, ORGANIZER, 5, idempotency=Idempotency("o:1", "5"))
    service.change_capacity(event_id, ORGANIZER, 5, idempotency=Idempotency("o:1", "5"))
    service.close_event(event_id, ORGANIZER, idempotency=Idempotency("o:2", "close"))
    closed = service.close_event(event_id, ORGANIZER, idempotency=Idempotency("o:2", "close"))

    assert again.replayed and again.reassigned == first.reassigned
    assert closed.closed and closed.version == raised.version + 1
    assert stored_types(service, event_id).count("CapacityChanged") == 1


def test_an_event_creation_key_reused_after_24_hours_creates_a_new_event(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Idempotency("org:create-1", "create")
    first = service.create_event(ORGANIZER, "Gig", 5, idempotency=key)
    assert service.create_event(ORGANIZER, "Gig", 5, idempotency=key).id == first.id
    created_at = service.get_event(first.id).idempotency[key.key][2]
    # A day later: records from the first creation have expired, newer ones have not.
    monkeypatch.setattr(
        Event, "key_expired", staticmethod(lambda recorded: recorded[2] <= created_at)
    )

    later = service.create_event(ORGANIZER, "Gig again", 7, idempotency=key)

    assert later.id != first.id and later.total_tickets == 7
    assert service.create_event(ORGANIZER, "Gig again", 7, idempotency=key).id == later.id


def test_the_history_of_an_id_that_names_no_ticketed_event_is_not_found_from_any_version(
    service: TicketingService,
) -> None:
    account = service.accounts.register_user("ann", "ann@example.com", "correct horse")
    service.accounts.set_role(account.id, "auditor", True)
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id

    for from_version in (1, 2):
        with pytest.raises(EventNotFound):
            service.history(account.id, from_version)
    assert service.history(event_id, 2) == []
