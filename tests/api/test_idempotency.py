"""Idempotency-Key: a retried write returns the first response and changes nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.api.conftest import Api, error_code


def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def _history_length(api: Api, event_id: str) -> int:
    return len(api.components.service.history(event_id))


def test_a_retried_booking_returns_the_first_response_and_books_once(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=5, per_user=2)
    body = {"eventId": event_id, "quantity": 2}
    first = api.post("/api/book", alice, json=body, headers=_key("book-1"))
    stored = _history_length(api, event_id)
    retry = api.post("/api/book", alice, json=body, headers=_key("book-1"))
    assert first.status_code == retry.status_code == 201
    assert retry.json == first.json
    assert _history_length(api, event_id) == stored
    assert api.get(f"/api/status/{event_id}", alice).json["bookedTickets"] == 2


def test_a_retried_waitlisting_answers_202_again(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=1)
    api.book(alice, event_id)
    first = api.post("/api/book", bob, json={"eventId": event_id}, headers=_key("k"))
    retry = api.post("/api/book", bob, json={"eventId": event_id}, headers=_key("k"))
    assert first.status_code == retry.status_code == 202
    assert retry.json == first.json


def test_a_retried_partial_booking_returns_both_halves_again(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=2, per_user=2)
    api.book(alice, event_id)
    body = {"eventId": event_id, "quantity": 2}
    first = api.post("/api/book", bob, json=body, headers=_key("k"))
    retry = api.post("/api/book", bob, json=body, headers=_key("k"))
    assert first.status_code == retry.status_code == 201
    assert "waitlisted" in first.json
    assert retry.json == first.json


def test_a_default_field_spelled_out_is_the_same_request(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer)
    first = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("k"))
    retry = api.post(
        "/api/book", alice, json={"quantity": 1, "eventId": event_id}, headers=_key("k")
    )
    assert retry.status_code == 201
    assert retry.json == first.json


def test_the_same_key_with_another_body_is_idempotency_key_reused(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=5, per_user=2)
    api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("k"))
    response = api.post(
        "/api/book", alice, json={"eventId": event_id, "quantity": 2}, headers=_key("k")
    )
    assert response.status_code == 422
    assert error_code(response) == "idempotency_key_reused"


def test_keys_are_scoped_to_the_caller(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer)
    mine = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("same"))
    theirs = api.post("/api/book", bob, json={"eventId": event_id}, headers=_key("same"))
    assert mine.status_code == theirs.status_code == 201
    assert mine.json["bookingId"] != theirs.json["bookingId"]
    assert theirs.json["userId"] == bob.id


def test_a_retried_cancellation_returns_the_first_response(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    bob = api.user("bob")
    event_id = api.create_event(organizer, total=1)
    booking = api.book(alice, event_id).json
    api.book(bob, event_id)
    body = {"bookingId": booking["bookingId"]}
    first = api.post("/api/cancel", alice, json=body, headers=_key("c"))
    stored = _history_length(api, event_id)
    retry = api.post("/api/cancel", alice, json=body, headers=_key("c"))
    assert first.status_code == retry.status_code == 200
    assert retry.json == first.json
    assert first.json["reassignedTo"][0]["userId"] == bob.id
    assert _history_length(api, event_id) == stored
    without_key = api.post("/api/cancel", alice, json=body)
    assert error_code(without_key) == "already_cancelled"


def test_a_retried_event_creation_creates_one_event(api: Api):
    organizer = api.user("organizer")
    body = {"name": "Once", "totalTickets": 10}
    first = api.post("/api/events", organizer, json=body, headers=_key("create"))
    retry = api.post("/api/events", organizer, json=body, headers=_key("create"))
    assert first.status_code == retry.status_code == 201
    assert retry.json == first.json
    listed = api.get("/api/events", organizer).json["items"]
    assert [item["eventId"] for item in listed] == [first.json["eventId"]]
    other = api.post(
        "/api/events", organizer, json={"name": "Twice", "totalTickets": 10}, headers=_key("create")
    )
    assert other.status_code == 422
    assert error_code(other) == "idempotency_key_reused"


def test_retried_close_and_capacity_return_the_first_response(api: Api):
    organizer = api.user("organizer")
    event_id = api.create_event(organizer, total=2)
    capacity = {"totalTickets": 4}
    first = api.post(
        f"/api/events/{event_id}/capacity", organizer, json=capacity, headers=_key("a")
    )
    retry = api.post(
        f"/api/events/{event_id}/capacity", organizer, json=capacity, headers=_key("a")
    )
    assert first.status_code == retry.status_code == 200
    assert retry.json["totalTickets"] == 4
    closed = api.post(f"/api/events/{event_id}/close", organizer, headers=_key("b"))
    closed_again = api.post(f"/api/events/{event_id}/close", organizer, headers=_key("b"))
    assert closed.status_code == closed_again.status_code == 200
    assert closed_again.json == closed.json
    assert error_code(api.post(f"/api/events/{event_id}/close", organizer)) == "event_closed"


def test_concurrent_duplicates_book_once(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=10)

    def attempt(_: int):
        client = api.app.test_client()
        return client.post(
            "/api/book",
            json={"eventId": event_id},
            headers=alice.headers | _key("race"),
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(attempt, range(6)))
    assert {response.status_code for response in responses} == {201}
    assert len({response.json["bookingId"] for response in responses}) == 1
    booked = [
        e for e in api.components.service.history(event_id) if type(e).__name__ == "TicketBooked"
    ]
    assert len(booked) == 1


def test_an_unreasonable_key_is_a_validation_error(sqlite_api: Api):
    alice = sqlite_api.user("alice")
    for key in ("x" * 256, "has space", "tab\there"):
        response = sqlite_api.post(
            "/api/events", alice, json={"name": "Gig", "totalTickets": 1}, headers=_key(key)
        )
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json["error"]["details"]


def test_a_retried_refusal_returns_the_first_refusal_even_after_the_state_changed(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=2)
    api.book(alice, event_id)
    first = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("again"))
    assert error_code(first) == "already_booked"
    api.post("/api/cancel", alice, json={"eventId": event_id})
    retry = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("again"))
    assert retry.status_code == first.status_code == 409
    assert retry.json == first.json
    assert api.get(f"/api/booking-status/{event_id}/{alice.id}", alice).json["status"] in (
        "cancelled",
        "none",
    )


def test_a_retried_capacity_change_returns_the_first_body_not_the_current_state(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=2)
    body = {"totalTickets": 4}
    first = api.post(f"/api/events/{event_id}/capacity", organizer, json=body, headers=_key("c"))
    api.book(alice, event_id)
    retry = api.post(f"/api/events/{event_id}/capacity", organizer, json=body, headers=_key("c"))
    assert retry.json == first.json
    assert retry.json["availableTickets"] == 4


def test_a_lost_log_entry_falls_back_on_the_aggregate_and_still_books_once(api: Api):
    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=5)
    first = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("lost"))
    with api.components.read_model.database.transaction() as cursor:
        cursor.execute("DELETE FROM idempotency_responses")
    stored = _history_length(api, event_id)
    retry = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("lost"))
    assert retry.status_code == first.status_code == 201
    assert retry.json["bookingId"] == first.json["bookingId"]
    assert _history_length(api, event_id) == stored


def test_a_server_error_is_not_kept_for_retries(api: Api, monkeypatch):
    from domain.errors import ServiceBusy

    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=5)
    service = api.components.service
    real_book = service.book

    def busy(*args, **kwargs):
        raise ServiceBusy()

    monkeypatch.setattr(service, "book", busy)
    refused = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("busy"))
    assert refused.status_code == 503
    monkeypatch.setattr(service, "book", real_book)
    retry = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("busy"))
    assert retry.status_code == 201


def test_an_idempotency_store_that_cannot_be_written_does_not_fail_a_committed_write(
    api: Api, monkeypatch
):
    from api.idempotency_store import IdempotencyStore

    organizer = api.user("organizer")
    alice = api.user("alice")
    event_id = api.create_event(organizer, total=5)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(IdempotencyStore, "record", broken)
    first = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("k"))
    monkeypatch.undo()
    retry = api.post("/api/book", alice, json={"eventId": event_id}, headers=_key("k"))
    assert first.status_code == retry.status_code == 201
    assert retry.json["bookingId"] == first.json["bookingId"]
