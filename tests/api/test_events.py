"""Ticketed events: creation, listing, status, closing and capacity."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.api.conftest import Api, error_code

STATUS_FIELDS = {
    "eventId",
    "name",
    "totalTickets",
    "availableTickets",
    "bookedTickets",
    "heldTickets",
    "waitingListCount",
    "status",
    "version",
    "waitlistMode",
    "offerTtlSeconds",
}


@pytest.mark.parametrize("path", ["/api/initialize", "/api/events"])
def test_creating_an_event_answers_201_and_makes_the_caller_organizer(api: Api, path: str):
    organizer = api.user("organizer")
    response = api.post(
        path, organizer, json={"name": "Opera", "totalTickets": 100, "maxTicketsPerUser": 4}
    )
    assert response.status_code == 201
    body = response.json
    assert set(body) == {
        "eventId",
        "name",
        "totalTickets",
        "availableTickets",
        "heldTickets",
        "maxTicketsPerUser",
        "waitlistMode",
        "offerTtlSeconds",
        "organizerId",
        "createdAt",
    }
    assert body["name"] == "Opera"
    assert body["totalTickets"] == body["availableTickets"] == 100
    assert body["maxTicketsPerUser"] == 4
    assert body["organizerId"] == organizer.id
    datetime.fromisoformat(body["createdAt"])


def test_max_tickets_per_user_defaults_to_one(api: Api):
    organizer = api.user("organizer")
    response = api.post("/api/events", organizer, json={"name": "Gig", "totalTickets": 5})
    assert response.json["maxTicketsPerUser"] == 1


def test_max_tickets_per_user_may_not_exceed_the_capacity(api: Api):
    organizer = api.user("organizer")
    response = api.post(
        "/api/events", organizer, json={"name": "Gig", "totalTickets": 2, "maxTicketsPerUser": 3}
    )
    assert response.status_code == 400
    assert set(response.json["error"]["details"]) == {"maxTicketsPerUser"}


def test_status_shows_the_seat_counts(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=3)
    api.book(alice, event_id)
    response = api.get(f"/api/status/{event_id}", alice)
    assert response.status_code == 200
    status = response.json
    assert STATUS_FIELDS <= set(status)
    assert status["eventId"] == event_id
    assert (status["totalTickets"], status["availableTickets"], status["bookedTickets"]) == (
        3,
        2,
        1,
    )
    assert status["waitingListCount"] == 0
    assert status["status"] == "open"
    assert status["version"] == 2  # created, then one booking
    assert (status["heldTickets"], status["waitlistMode"], status["offerTtlSeconds"]) == (
        0,
        "auto",
        None,
    )
    assert api.get(f"/api/events/{event_id}", alice).json == status


def test_status_of_an_unknown_event_is_event_not_found(api: Api):
    alice = api.user("alice")
    for event_id in ("00000000-0000-0000-0000-000000000000", "not-an-id"):
        for path in (f"/api/status/{event_id}", f"/api/events/{event_id}"):
            response = api.get(path, alice)
            assert response.status_code == 404
            assert error_code(response) == "event_not_found"


def test_a_new_event_is_readable_before_the_projection_has_applied_it(api: Api):
    organizer = api.user("organizer")
    api.components.runner.stop()
    event_id = api.create_event(organizer, total=7)
    response = api.request("GET", f"/api/status/{event_id}", organizer)
    assert response.status_code == 200
    assert response.json["availableTickets"] == 7


def test_listing_events_pages_through_all_of_them_oldest_first(api: Api):
    organizer = api.user("organizer")
    created = [api.create_event(organizer, name=f"Event {n}") for n in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = api.get(f"/api/events{query}", organizer)
        assert response.status_code == 200
        assert len(response.json["items"]) <= 2
        assert all(STATUS_FIELDS <= set(item) for item in response.json["items"])
        seen += [item["eventId"] for item in response.json["items"]]
        pages += 1
        cursor = response.json["nextCursor"]
        if cursor is None:
            break
    assert seen == created
    assert pages == 3


@pytest.mark.parametrize("limit", ["0", "501", "-1", "two"])
def test_a_list_limit_outside_1_to_500_is_a_validation_error(sqlite_api: Api, limit: str):
    alice = sqlite_api.user("alice")
    response = sqlite_api.get(f"/api/events?limit={limit}", alice)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "limit" in response.json["error"]["details"]


def test_a_cursor_this_service_did_not_issue_is_a_validation_error(api: Api):
    alice = api.user("alice")
    response = api.get("/api/events?cursor=bogus!!", alice)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "cursor" in response.json["error"]["details"]


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("/api/events", ["not a time", "x"]),
        ("/api/events", [1, 2]),
        ("/api/events/{event}/waitlist", ["seven"]),
        ("/api/events/{event}/waitlist", [True]),
        ("/api/events/{event}/bookings", [7]),
    ],
)
def test_a_well_formed_cursor_with_values_of_the_wrong_kind_is_a_validation_error(
    api: Api, path: str, values: list
):
    from projections.queries import encode_cursor

    organizer = api.user("organizer")
    event_id = api.create_event(organizer, total=1)
    response = api.get(path.format(event=event_id) + f"?cursor={encode_cursor(*values)}", organizer)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_closing_refuses_new_bookings_but_not_cancellations(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    carol = api.user("carol")
    event_id = api.create_event(organizer, total=1)
    booking = api.book(alice, event_id).json
    api.book(bob, event_id)  # waitlisted
    closed = api.post(f"/api/events/{event_id}/close", organizer)
    assert closed.status_code == 200
    assert closed.json["status"] == "closed"
    assert closed.json["eventId"] == event_id
    refused = api.post("/api/book", carol, json={"eventId": event_id})
    assert refused.status_code == 409
    assert error_code(refused) == "event_closed"
    cancelled = api.post("/api/cancel", alice, json={"bookingId": booking["bookingId"]})
    assert cancelled.status_code == 200
    assert cancelled.json["reassignedTo"][0]["userId"] == bob.id  # the queue is still served
    assert api.get(f"/api/status/{event_id}", organizer).json["status"] == "closed"


def test_closing_twice_is_event_closed(api: Api):
    organizer = api.user("organizer")
    event_id = api.create_event(organizer)
    api.post(f"/api/events/{event_id}/close", organizer)
    response = api.post(f"/api/events/{event_id}/close", organizer)
    assert response.status_code == 409
    assert error_code(response) == "event_closed"


def test_an_admin_may_close_someone_elses_event(api: Api):
    organizer = api.user("organizer")
    admin = api.user("root", "admin")
    event_id = api.create_event(organizer)
    assert api.post(f"/api/events/{event_id}/close", admin).status_code == 200


def test_closing_an_unknown_event_is_event_not_found(api: Api):
    organizer = api.user("organizer")
    response = api.post("/api/events/00000000-0000-0000-0000-000000000000/close", organizer)
    assert response.status_code == 404
    assert error_code(response) == "event_not_found"


def test_raising_capacity_promotes_the_waiting_list_in_order(api: Api):
    organizer = api.user("organizer")
    alice, bob, carol = (api.user(name) for name in ("alice", "bob", "carol"))
    event_id = api.create_event(organizer, total=1)
    api.book(alice, event_id)
    api.book(bob, event_id)
    api.book(carol, event_id)
    response = api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 2})
    assert response.status_code == 200
    assert response.json["totalTickets"] == 2
    assert response.json["bookedTickets"] == 2
    assert response.json["waitingListCount"] == 1
    bob_status = api.get(f"/api/booking-status/{event_id}/{bob.id}", bob).json
    carol_status = api.get(f"/api/booking-status/{event_id}/{carol.id}", carol).json
    assert bob_status["status"] == "confirmed"
    assert (carol_status["status"], carol_status["position"]) == ("waitlisted", 1)


def test_lowering_capacity_below_booked_tickets_is_refused(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=3, per_user=2)
    api.book(alice, event_id, quantity=2)
    response = api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 1})
    assert response.status_code == 409
    assert error_code(response) == "capacity_below_booked"
    lowered = api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 2})
    assert lowered.status_code == 200
    assert lowered.json["availableTickets"] == 0


@pytest.mark.parametrize("total", [0, -1, 1_000_001, True, 2.5, "3", None])
def test_capacity_must_be_a_whole_number_within_bounds(sqlite_api: Api, total):
    organizer = sqlite_api.user("organizer")
    event_id = sqlite_api.create_event(organizer)
    response = sqlite_api.post(
        f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": total}
    )
    assert response.status_code == 400
    assert "totalTickets" in response.json["error"]["details"]
