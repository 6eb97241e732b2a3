"""Booking, the waiting list, cancelling, and who holds what."""

from __future__ import annotations

from datetime import datetime

from tests.api.conftest import Api, error_code


def test_booking_a_free_seat_is_confirmed_with_201(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=5, per_user=2)
    response = api.post("/api/book", alice, json={"eventId": event_id, "quantity": 2})
    assert response.status_code == 201
    body = response.json
    assert set(body) == {"bookingId", "eventId", "userId", "quantity", "status"}
    assert (body["eventId"], body["userId"], body["quantity"], body["status"]) == (
        event_id,
        alice.id,
        2,
        "confirmed",
    )


def test_booking_for_oneself_by_user_id_is_allowed_but_not_for_someone_else(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer)
    own = api.post("/api/book", alice, json={"eventId": event_id, "userId": alice.id})
    assert own.status_code == 201
    other = api.post("/api/book", alice, json={"eventId": event_id, "userId": bob.id})
    assert other.status_code == 403
    assert error_code(other) == "forbidden"
    assert api.get(f"/api/booking-status/{event_id}/{bob.id}", bob).json["status"] == "none"


def test_booking_a_sold_out_event_joins_the_waiting_list_with_202(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=1)
    api.book(alice, event_id)
    response = api.post("/api/book", bob, json={"eventId": event_id})
    assert response.status_code == 202
    body = response.json
    assert set(body) == {
        "waitingListId",
        "eventId",
        "userId",
        "quantity",
        "position",
        "status",
        "message",
    }
    assert (body["status"], body["position"], body["quantity"]) == ("waitlisted", 1, 1)
    assert body["userId"] == bob.id


def test_booking_more_than_is_left_books_what_is_free_and_queues_the_rest(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=3, per_user=3)
    api.book(alice, event_id, quantity=2)
    response = api.post("/api/book", bob, json={"eventId": event_id, "quantity": 3})
    assert response.status_code == 201
    body = response.json
    assert (body["status"], body["quantity"]) == ("confirmed", 1)
    assert body["waitlisted"]["quantity"] == 2
    assert body["waitlisted"]["position"] == 1
    assert body["waitlisted"]["waitingListId"]


def test_a_second_booking_by_the_same_user_is_already_booked(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=1)
    api.book(alice, event_id)
    response = api.post("/api/book", alice, json={"eventId": event_id})
    assert response.status_code == 409
    assert error_code(response) == "already_booked"


def test_booking_more_than_the_per_user_maximum_is_a_validation_error(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=10, per_user=2)
    response = api.post("/api/book", alice, json={"eventId": event_id, "quantity": 3})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "quantity" in response.json["error"]["details"]


def test_booking_an_unknown_event_is_event_not_found(api: Api):
    alice = api.user("alice")
    for event_id in ("00000000-0000-0000-0000-000000000000", "nonsense"):
        response = api.post("/api/book", alice, json={"eventId": event_id})
        assert response.status_code == 404
        assert error_code(response) == "event_not_found"


def test_a_booking_can_be_cancelled_at_once_and_its_seat_goes_to_the_queue(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=1)
    api.components.runner.stop()  # the write path must not depend on the read models
    booking = api.book(alice, event_id).json
    api.book(bob, event_id)
    response = api.request("POST", "/api/cancel", alice, json={"bookingId": booking["bookingId"]})
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"message", "reassigned", "reassignedTo", "offeredTo"}
    assert body["reassigned"] is True
    assert body["reassignedTo"] == [
        {"userId": bob.id, "bookingId": body["reassignedTo"][0]["bookingId"], "quantity": 1}
    ]


def test_cancelling_with_nobody_waiting_reassigns_nothing(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=2)
    api.book(alice, event_id)
    response = api.post("/api/cancel", alice, json={"eventId": event_id})
    assert response.status_code == 200
    assert response.json["reassigned"] is False
    assert response.json["reassignedTo"] == []
    assert api.get(f"/api/status/{event_id}", alice).json["availableTickets"] == 2


def test_leaving_the_queue_by_waiting_list_id_keeps_the_booked_seats(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    carol = api.user("carol")
    event_id = api.create_event(organizer, total=2, per_user=2)
    api.book(alice, event_id)
    partial = api.book(bob, event_id, quantity=2).json
    carol_entry = api.book(carol, event_id).json
    assert carol_entry["position"] == 2
    left = api.post(
        "/api/cancel", bob, json={"waitingListId": partial["waitlisted"]["waitingListId"]}
    )
    assert left.status_code == 200
    bob_status = api.get(f"/api/booking-status/{event_id}/{bob.id}", bob).json
    assert (bob_status["status"], bob_status["quantity"]) == ("confirmed", 1)
    assert "waitingListId" not in bob_status
    carol_status = api.get(f"/api/booking-status/{event_id}/{carol.id}", carol).json
    assert carol_status["position"] == 1  # the queue shifted up


def test_cancelling_twice_is_already_cancelled(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer)
    booking = api.book(alice, event_id).json
    api.post("/api/cancel", alice, json={"bookingId": booking["bookingId"]})
    response = api.post("/api/cancel", alice, json={"bookingId": booking["bookingId"]})
    assert response.status_code == 409
    assert error_code(response) == "already_cancelled"


def test_cancelling_an_unknown_booking_is_booking_not_found(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer)
    hex_id = event_id.replace("-", "")
    for body in (
        {"bookingId": "bk_nonsense"},
        {"bookingId": f"bk_{hex_id}_99"},
        {"waitingListId": "wl_00000000000000000000000000000000_1"},
        {"eventId": event_id},  # the caller holds nothing there
    ):
        response = api.post("/api/cancel", alice, json=body)
        assert response.status_code == 404, body
        assert error_code(response) == "booking_not_found"


def test_cancelling_by_an_unknown_event_is_event_not_found(api: Api):
    alice = api.user("alice")
    response = api.post(
        "/api/cancel", alice, json={"eventId": "00000000-0000-0000-0000-000000000000"}
    )
    assert response.status_code == 404
    assert error_code(response) == "event_not_found"


def test_cancel_needs_exactly_one_target(api: Api):
    alice = api.user("alice")
    for body in ({}, {"bookingId": "bk_x", "eventId": "y"}):
        response = api.post("/api/cancel", alice, json=body)
        assert response.status_code == 400
        assert error_code(response) == "validation_error"


def test_someone_elses_booking_may_be_cancelled_only_by_organizer_or_admin(api: Api):
    organizer = api.user("organizer")
    admin = api.user("root", "admin")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=3)
    first = api.book(alice, event_id).json
    second = api.book(bob, event_id).json
    refused = api.post("/api/cancel", bob, json={"bookingId": first["bookingId"]})
    assert refused.status_code == 403
    assert error_code(refused) == "forbidden"
    assert (
        api.post("/api/cancel", organizer, json={"bookingId": first["bookingId"]}).status_code
        == 200
    )
    assert (
        api.post("/api/cancel", admin, json={"bookingId": second["bookingId"]}).status_code == 200
    )


def test_booking_status_tells_confirmed_waitlisted_cancelled_and_none(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    carol = api.user("carol")
    event_id = api.create_event(organizer, total=1)
    booking = api.book(alice, event_id).json
    entry = api.book(bob, event_id).json

    def status_of(user):
        response = api.get(f"/api/booking-status/{event_id}/{user.id}", user)
        assert response.status_code == 200
        assert (response.json["eventId"], response.json["userId"]) == (event_id, user.id)
        return response.json

    assert status_of(alice) == {
        "eventId": event_id,
        "userId": alice.id,
        "status": "confirmed",
        "bookingId": booking["bookingId"],
        "quantity": 1,
    }
    waiting = status_of(bob)
    assert (waiting["status"], waiting["waitingListId"], waiting["position"]) == (
        "waitlisted",
        entry["waitingListId"],
        1,
    )
    assert waiting["waitingQuantity"] == 1
    assert status_of(carol)["status"] == "none"
    api.post("/api/cancel", bob, json={"waitingListId": entry["waitingListId"]})
    assert status_of(bob)["status"] == "cancelled"


def test_booking_status_of_an_unknown_event_is_event_not_found(api: Api):
    alice = api.user("alice")
    response = api.get(
        f"/api/booking-status/00000000-0000-0000-0000-000000000000/{alice.id}", alice
    )
    assert response.status_code == 404
    assert error_code(response) == "event_not_found"


def test_the_waitlist_lists_entries_in_queue_order_with_paging(api: Api):
    organizer = api.user("organizer")
    holder = api.user("holder")
    waiting = [api.user(f"waiting{n}") for n in range(3)]
    event_id = api.create_event(organizer, total=1)
    api.book(holder, event_id)
    entries = [api.book(user, event_id).json for user in waiting]
    first = api.get(f"/api/events/{event_id}/waitlist?limit=2", organizer)
    assert first.status_code == 200
    assert [item["position"] for item in first.json["items"]] == [1, 2]
    item = first.json["items"][0]
    assert set(item) == {"waitingListId", "userId", "quantity", "position", "joinedAt"}
    datetime.fromisoformat(item["joinedAt"])
    rest = api.get(
        f"/api/events/{event_id}/waitlist?limit=2&cursor={first.json['nextCursor']}", organizer
    )
    assert rest.json["nextCursor"] is None
    listed = first.json["items"] + rest.json["items"]
    assert [item["waitingListId"] for item in listed] == [e["waitingListId"] for e in entries]
    assert [item["userId"] for item in listed] == [user.id for user in waiting]
    assert [item["position"] for item in listed] == [1, 2, 3]


def test_the_bookings_list_shows_active_bookings(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=5, per_user=2)
    kept = api.book(alice, event_id, quantity=2).json
    dropped = api.book(bob, event_id).json
    api.post("/api/cancel", bob, json={"bookingId": dropped["bookingId"]})
    response = api.get(f"/api/events/{event_id}/bookings", organizer)
    assert response.status_code == 200
    assert response.json["nextCursor"] is None
    [item] = response.json["items"]
    assert set(item) == {"bookingId", "userId", "quantity", "bookedAt"}
    assert (item["bookingId"], item["userId"], item["quantity"]) == (kept["bookingId"], alice.id, 2)


def test_lists_of_an_unknown_event_are_event_not_found(api: Api):
    admin = api.user("root", "admin")
    for what in ("waitlist", "bookings"):
        response = api.get(f"/api/events/00000000-0000-0000-0000-000000000000/{what}", admin)
        assert response.status_code == 404
        assert error_code(response) == "event_not_found"


def test_the_contract_walkthrough_two_seats_three_users(api: Api):
    organizer = api.user("organizer")
    alice, bob, carol = (api.user(name) for name in ("alice", "bob", "carol"))
    event_id = api.create_event(organizer, total=2)
    assert api.book(alice, event_id).status_code == 201
    assert api.book(bob, event_id).status_code == 201
    queued = api.book(carol, event_id)
    assert (queued.status_code, queued.json["position"]) == (202, 1)
    cancelled = api.post("/api/cancel", alice, json={"eventId": event_id})
    assert cancelled.json["reassignedTo"][0]["userId"] == carol.id
    status = api.get(f"/api/status/{event_id}", organizer).json
    assert (status["bookedTickets"], status["availableTickets"], status["waitingListCount"]) == (
        2,
        0,
        0,
    )
    carol_status = api.get(f"/api/booking-status/{event_id}/{carol.id}", carol).json
    assert carol_status["status"] == "confirmed"


def test_an_event_id_in_another_uuid_spelling_names_the_same_event_everywhere(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=2)
    shouted = event_id.upper()
    booked = api.post("/api/book", alice, json={"eventId": shouted})
    assert booked.status_code == 201
    assert booked.json["eventId"] == event_id
    status = api.get(f"/api/booking-status/{shouted}/{alice.id.upper()}", alice)
    assert status.json["status"] == "confirmed"
    assert status.json["eventId"] == event_id
    listed = api.get(f"/api/events/{shouted}/bookings", organizer).json["items"]
    assert [item["userId"] for item in listed] == [alice.id]
