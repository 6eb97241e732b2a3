"""Waitlist offers over HTTP: an event's promotion policy, offers made by freed seats, and
accepting or declining them, with every refusal the contract names."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest

from tests.api.conftest import Api, error_code
from tests.api.offering import create_offer_event, free_a_seat, history_types, offer_to, status

CREATED_FIELDS = {
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


# ------------------------------------------------------------------ the policy
@pytest.mark.parametrize("path", ["/api/initialize", "/api/events"])
def test_an_offer_mode_event_shows_its_policy_in_the_201_and_in_every_status(api: Api, path):
    organizer = api.user("organizer")
    body = {"name": "Quartet", "totalTickets": 3, "waitlistMode": "offer", "offerTtlSeconds": 120}
    response = api.post(path, organizer, json=body)
    assert response.status_code == 201
    created = response.json
    assert set(created) == CREATED_FIELDS
    assert (created["waitlistMode"], created["offerTtlSeconds"], created["heldTickets"]) == (
        "offer",
        120,
        0,
    )
    event_id = created["eventId"]
    for answer in (
        status(api, organizer, event_id),
        api.get(f"/api/events/{event_id}", organizer).json,
        api.get("/api/events", organizer).json["items"][0],
        api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 4}).json,
        api.post(f"/api/events/{event_id}/close", organizer).json,
    ):
        assert (answer["waitlistMode"], answer["offerTtlSeconds"], answer["heldTickets"]) == (
            "offer",
            120,
            0,
        ), answer


def test_offer_mode_defaults_to_an_hour_and_auto_mode_has_no_ttl(api: Api):
    organizer = api.user("organizer")
    offer = api.post(
        "/api/events", organizer, json={"name": "A", "totalTickets": 1, "waitlistMode": "offer"}
    ).json
    assert (offer["waitlistMode"], offer["offerTtlSeconds"]) == ("offer", 3600)
    for body in (
        {"name": "B", "totalTickets": 1},
        {"name": "C", "totalTickets": 1, "waitlistMode": "auto"},
    ):
        auto = api.post("/api/events", organizer, json=body).json
        assert (auto["waitlistMode"], auto["offerTtlSeconds"], auto["heldTickets"]) == (
            "auto",
            None,
            0,
        )
        assert status(api, organizer, auto["eventId"])["offerTtlSeconds"] is None


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"waitlistMode": "manual"}, "waitlistMode"),
        ({"waitlistMode": "OFFER"}, "waitlistMode"),
        ({"waitlistMode": True}, "waitlistMode"),
        ({"waitlistMode": 1}, "waitlistMode"),
        ({"waitlistMode": None}, "waitlistMode"),
        ({"waitlistMode": "offer", "offerTtlSeconds": 59}, "offerTtlSeconds"),
        ({"waitlistMode": "offer", "offerTtlSeconds": 604_801}, "offerTtlSeconds"),
        ({"waitlistMode": "offer", "offerTtlSeconds": True}, "offerTtlSeconds"),
        ({"waitlistMode": "offer", "offerTtlSeconds": 60.0}, "offerTtlSeconds"),
        ({"waitlistMode": "offer", "offerTtlSeconds": "60"}, "offerTtlSeconds"),
        ({"waitlistMode": "offer", "offerTtlSeconds": None}, "offerTtlSeconds"),
        ({"waitlistMode": "offer", "offerTtlSeconds": 10**30}, "offerTtlSeconds"),
        ({"offerTtlSeconds": 600}, "offerTtlSeconds"),
        ({"waitlistMode": "auto", "offerTtlSeconds": 600}, "offerTtlSeconds"),
    ],
)
def test_bad_policy_fields_are_refused_by_name_and_nothing_is_created(
    sqlite_api: Api, extra, field
):
    organizer = sqlite_api.user("organizer")
    response = sqlite_api.post(
        "/api/initialize", organizer, json={"name": "X", "totalTickets": 5, **extra}
    )
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert set(response.json["error"]["details"]) == {field}
    assert sqlite_api.get("/api/events", organizer).json["items"] == []


def test_the_offer_policy_bounds_are_inclusive(sqlite_api: Api):
    organizer = sqlite_api.user("organizer")
    for ttl in (60, 604_800):
        body = {"name": "X", "totalTickets": 1, "waitlistMode": "offer", "offerTtlSeconds": ttl}
        response = sqlite_api.post("/api/events", organizer, json=body)
        assert response.status_code == 201, response.json
        assert response.json["offerTtlSeconds"] == ttl


# ------------------------------------------------------- freed seats are offered
def test_a_cancellation_in_offer_mode_offers_the_seat_and_holds_it(api: Api):
    organizer, alice, bob, carol = (api.user(n) for n in ("organizer", "alice", "bob", "carol"))
    event_id = create_offer_event(api, organizer, total=1)
    booking = api.book(alice, event_id).json
    api.book(bob, event_id)
    response = api.post("/api/cancel", alice, json={"bookingId": booking["bookingId"]})
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"message", "reassigned", "reassignedTo", "offeredTo"}
    assert (body["reassigned"], body["reassignedTo"]) == (False, [])
    (offer,) = body["offeredTo"]
    assert set(offer) == {"userId", "offerId", "quantity"}
    assert (offer["userId"], offer["quantity"]) == (bob.id, 1)
    counts = status(api, organizer, event_id)
    assert (counts["bookedTickets"], counts["heldTickets"], counts["availableTickets"]) == (0, 1, 0)
    # A held seat is nobody else's: a new booker queues behind the offered entry.
    late = api.post("/api/book", carol, json={"eventId": event_id})
    assert late.status_code == 202
    assert late.json["position"] == 2


def test_a_cancellation_in_auto_mode_keeps_the_v1_answer_with_no_offers(api: Api):
    organizer, alice, bob = (api.user(n) for n in ("organizer", "alice", "bob"))
    event_id = api.create_event(organizer, total=1)
    booking = api.book(alice, event_id).json
    api.book(bob, event_id)
    body = api.post("/api/cancel", alice, json={"bookingId": booking["bookingId"]}).json
    assert body["reassigned"] is True
    assert [r["userId"] for r in body["reassignedTo"]] == [bob.id]
    assert body["offeredTo"] == []
    assert status(api, organizer, event_id)["heldTickets"] == 0


def test_a_cancellation_with_nobody_waiting_offers_nothing(api: Api):
    organizer, alice = api.user("organizer"), api.user("alice")
    event_id = create_offer_event(api, organizer, total=2)
    api.book(alice, event_id)
    assert free_a_seat(api, alice, event_id) == []
    assert status(api, organizer, event_id)["availableTickets"] == 2


def test_a_capacity_raise_in_offer_mode_offers_seats_to_the_heads_in_order(api: Api):
    organizer, alice, bob, carol = (api.user(n) for n in ("organizer", "alice", "bob", "carol"))
    event_id = create_offer_event(api, organizer, total=1)
    api.book(alice, event_id)
    api.book(bob, event_id)
    api.book(carol, event_id)
    raised = api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 3})
    assert raised.status_code == 200
    assert (raised.json["bookedTickets"], raised.json["heldTickets"]) == (1, 2)
    assert raised.json["availableTickets"] == 0
    offers = [
        e for e in api.components.service.history(event_id) if type(e).__name__ == "OfferMade"
    ]
    assert [o.user_id for o in offers] == [bob.id, carol.id]
    lowered = api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 2})
    assert lowered.status_code == 409
    assert error_code(lowered) == "capacity_below_booked"


# ------------------------------------------------------------------- accepting
def test_accepting_an_offer_books_its_seats(api: Api):
    bob = api.user("bob")
    event_id, offer_id, organizer = offer_to(api, bob)
    response = api.post(f"/api/offers/{offer_id}/accept", bob)
    assert response.status_code == 201
    body = response.json
    assert set(body) == {"bookingId", "eventId", "userId", "quantity", "status"}
    assert (body["eventId"], body["userId"], body["quantity"], body["status"]) == (
        event_id,
        bob.id,
        1,
        "confirmed",
    )
    counts = status(api, organizer, event_id)
    assert (counts["bookedTickets"], counts["heldTickets"], counts["waitingListCount"]) == (1, 0, 0)
    booked = api.get(f"/api/booking-status/{event_id}/{bob.id}", bob).json
    assert (booked["status"], booked["bookingId"]) == ("confirmed", body["bookingId"])
    # The booking is bob's like any other: cancellable at once.
    cancelled = api.post("/api/cancel", bob, json={"bookingId": body["bookingId"]})
    assert cancelled.status_code == 200


def test_a_partial_holder_accepting_joins_the_existing_booking_and_keeps_the_rest_queued(api: Api):
    organizer, alice, bob = (api.user(n) for n in ("organizer", "alice", "bob"))
    event_id = create_offer_event(api, organizer, total=3, per_user=3)
    api.book(alice, event_id, quantity=2)
    partial = api.book(bob, event_id, quantity=3).json
    assert partial["quantity"] == 1 and partial["waitlisted"]["quantity"] == 2
    freed = api.post("/api/book", organizer, json={"eventId": event_id})  # queues behind bob
    assert freed.status_code == 202
    api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 4})
    offers = api.get("/api/users/me/offers", bob).json["items"]
    assert [o["quantity"] for o in offers] == [1]
    accepted = api.post(f"/api/offers/{offers[0]['offerId']}/accept", bob).json
    assert accepted["bookingId"] == partial["bookingId"]
    assert accepted["quantity"] == 2
    held = api.get(f"/api/booking-status/{event_id}/{bob.id}", bob).json
    assert (held["status"], held["quantity"], held["waitingQuantity"], held["position"]) == (
        "confirmed",
        2,
        1,
        1,
    )
    status(api, organizer, event_id)


def test_accepting_twice_or_declining_after_accepting_is_offer_closed(api: Api):
    bob = api.user("bob")
    _event_id, offer_id, _organizer = offer_to(api, bob)
    assert api.post(f"/api/offers/{offer_id}/accept", bob).status_code == 201
    for answer in ("accept", "decline"):
        again = api.post(f"/api/offers/{offer_id}/{answer}", bob)
        assert again.status_code == 409, answer
        assert error_code(again) == "offer_closed"


def test_an_offer_accepted_after_its_deadline_is_offer_expired_and_goes_to_the_next(
    api: Api, move_clock
):
    bob, carol = api.user("bob"), api.user("carol")
    event_id, offer_id, organizer = offer_to(api, bob, ttl=60)
    api.book(carol, event_id)
    move_clock(timedelta(seconds=61))
    response = api.post(f"/api/offers/{offer_id}/accept", bob)
    assert response.status_code == 409
    assert error_code(response) == "offer_expired"
    declined = api.post(f"/api/offers/{offer_id}/decline", bob)
    assert error_code(declined) == "offer_expired"
    assert "OfferExpired" in history_types(api, event_id)
    # Bob left the queue; the seat is on offer to carol now.
    assert api.get("/api/users/me/offers", bob).json["items"] == []
    (carols,) = api.get("/api/users/me/offers", carol).json["items"]
    assert api.post(f"/api/offers/{carols['offerId']}/accept", carol).status_code == 201
    assert status(api, organizer, event_id)["bookedTickets"] == 1


def test_an_offer_is_answered_until_its_deadline(api: Api, move_clock):
    bob = api.user("bob")
    _event_id, offer_id, _organizer = offer_to(api, bob, ttl=60)
    move_clock(timedelta(seconds=55))
    assert api.post(f"/api/offers/{offer_id}/accept", bob).status_code == 201


def test_closing_an_event_leaves_its_offers_acceptable(api: Api):
    bob = api.user("bob")
    event_id, offer_id, organizer = offer_to(api, bob)
    assert api.post(f"/api/events/{event_id}/close", organizer).status_code == 200
    assert api.post(f"/api/offers/{offer_id}/accept", bob).status_code == 201


# ------------------------------------------------------------------- declining
def test_declining_leaves_the_queue_and_offers_the_seats_to_the_next_head(api: Api):
    bob, carol = api.user("bob"), api.user("carol")
    event_id, offer_id, organizer = offer_to(api, bob)
    api.book(carol, event_id)
    response = api.post(f"/api/offers/{offer_id}/decline", bob)
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"message", "offeredTo"}
    (offer,) = body["offeredTo"]
    assert (offer["userId"], offer["quantity"]) == (carol.id, 1)
    assert offer["offerId"] != offer_id
    mine = api.get(f"/api/booking-status/{event_id}/{bob.id}", bob).json
    assert mine["status"] not in ("waitlisted", "offered")
    counts = status(api, organizer, event_id)
    assert (counts["heldTickets"], counts["waitingListCount"]) == (1, 1)


def test_declining_with_nobody_behind_frees_the_seat(api: Api):
    bob = api.user("bob")
    event_id, offer_id, organizer = offer_to(api, bob)
    body = api.post(f"/api/offers/{offer_id}/decline", bob).json
    assert body["offeredTo"] == []
    counts = status(api, organizer, event_id)
    assert (counts["heldTickets"], counts["availableTickets"]) == (0, 1)
    again = api.post(f"/api/offers/{offer_id}/decline", bob)
    assert (again.status_code, error_code(again)) == (409, "offer_closed")


def test_cancelling_the_waitlist_entry_of_an_open_offer_declines_it(api: Api):
    bob = api.user("bob")
    event_id, offer_id, organizer = offer_to(api, bob)
    entry = api.get(f"/api/booking-status/{event_id}/{bob.id}", bob).json["waitingListId"]
    response = api.post("/api/cancel", bob, json={"waitingListId": entry})
    assert response.status_code == 200
    assert history_types(api, event_id)[-1] == "OfferDeclined"
    accepted = api.post(f"/api/offers/{offer_id}/accept", bob)
    assert (accepted.status_code, error_code(accepted)) == (409, "offer_closed")
    assert status(api, organizer, event_id)["availableTickets"] == 1


# --------------------------------------------------------------------- refusals
def test_only_the_person_offered_may_answer_an_offer(api: Api):
    bob = api.user("bob")
    event_id, offer_id, organizer = offer_to(api, bob)
    admin = api.user("admin", "admin")
    stranger = api.user("stranger")
    for caller in (stranger, organizer, admin):
        for answer in ("accept", "decline"):
            response = api.post(f"/api/offers/{offer_id}/{answer}", caller)
            assert response.status_code == 403, (caller.username, answer)
            assert error_code(response) == "forbidden"
    assert status(api, organizer, event_id)["heldTickets"] == 1
    assert api.post(f"/api/offers/{offer_id}/accept", bob).status_code == 201


def test_answering_an_offer_needs_a_token(api: Api):
    bob = api.user("bob")
    event_id, offer_id, organizer = offer_to(api, bob)
    for answer in ("accept", "decline"):
        response = api.post(f"/api/offers/{offer_id}/{answer}")
        assert response.status_code == 401
        assert error_code(response) == "unauthorized"
    assert api.get("/api/users/me/offers").status_code == 401
    assert status(api, organizer, event_id)["heldTickets"] == 1


def test_an_unknown_offer_is_offer_not_found(api: Api):
    bob = api.user("bob")
    event_id, offer_id, _organizer = offer_to(api, bob)
    prefix, event_hex, sequence = offer_id.split("_")
    unknown = [
        f"{prefix}_{event_hex}_{int(sequence) + 50}",  # the right event, no such offer
        f"{prefix}_{'0' * 32}_1",  # no such event
        f"bk_{event_hex}_{sequence}",  # another kind of id
        f"{prefix}_{event_hex.upper()}_{sequence}",  # not the service's spelling
        f"{prefix}_{event_hex}_0{sequence}",
        "not-an-offer",
    ]
    before = len(api.components.service.history(event_id))
    for bad in unknown:
        for answer in ("accept", "decline"):
            response = api.post(f"/api/offers/{bad}/{answer}", bob)
            assert response.status_code == 404, (bad, response.json)
            assert error_code(response) == "offer_not_found"
    assert len(api.components.service.history(event_id)) == before


# Spellings of a real offer id that the service's parsing would read as the same offer.
RESPELLINGS = {
    "upper case": lambda prefix, hex_, seq: f"{prefix}_{hex_.upper()}_{seq}",
    "braces": lambda prefix, hex_, seq: f"{prefix}_{{{hex_}}}_{seq}",
    "hyphens": lambda prefix, hex_, seq: f"{prefix}_{uuid.UUID(hex=hex_)}_{seq}",
    "plus sign": lambda prefix, hex_, seq: f"{prefix}_{hex_}_+{seq}",
    "other digits": lambda prefix, hex_, seq: f"{prefix}_{hex_}_{chr(0x0660 + int(seq))}",
    "NUL": lambda prefix, hex_, seq: f"{prefix}_{hex_}_{seq}\x00",
}


@pytest.mark.parametrize("spelling", RESPELLINGS)
def test_an_offer_id_in_another_spelling_is_not_found_before_the_service_is_asked(
    sqlite_api: Api, monkeypatch, spelling
):
    bob = sqlite_api.user("bob")
    _event_id, offer_id, _organizer = offer_to(sqlite_api, bob)
    service = sqlite_api.components.service

    def unexpected(*args, **kwargs):
        raise AssertionError("the service was asked")

    monkeypatch.setattr(service, "accept_offer", unexpected)
    monkeypatch.setattr(service, "decline_offer", unexpected)
    bad = quote(RESPELLINGS[spelling](*offer_id.split("_")), safe="")
    for answer in ("accept", "decline"):
        response = sqlite_api.post(f"/api/offers/{bad}/{answer}", bob)
        assert response.status_code == 404, (bad, response.get_data(as_text=True))
        assert error_code(response) == "offer_not_found"


def test_an_answer_takes_no_body_but_an_empty_object(sqlite_api: Api):
    bob = sqlite_api.user("bob")
    _event_id, offer_id, _organizer = offer_to(sqlite_api, bob)
    extra = sqlite_api.post(f"/api/offers/{offer_id}/accept", bob, json={"quantity": 1})
    assert extra.status_code == 400
    assert set(extra.json["error"]["details"]) == {"quantity"}
    assert sqlite_api.post(f"/api/offers/{offer_id}/accept", bob, json={}).status_code == 201


# ------------------------------------------------------------------ idempotency
def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


@pytest.mark.parametrize(("answer", "code"), [("accept", 201), ("decline", 200)])
def test_a_retried_answer_returns_the_first_response_and_changes_nothing(api: Api, answer, code):
    bob, carol = api.user("bob"), api.user("carol")
    event_id, offer_id, _organizer = offer_to(api, bob)
    api.book(carol, event_id)
    path = f"/api/offers/{offer_id}/{answer}"
    first = api.post(path, bob, headers=_key("answer-1"))
    stored = history_types(api, event_id)
    retry = api.post(path, bob, headers=_key("answer-1"))
    assert first.status_code == retry.status_code == code
    assert retry.json == first.json
    assert history_types(api, event_id) == stored
    other = "decline" if answer == "accept" else "accept"
    reused = api.post(f"/api/offers/{offer_id}/{other}", bob, headers=_key("answer-1"))
    assert (reused.status_code, error_code(reused)) == (422, "idempotency_key_reused")
    unkeyed = api.post(path, bob)
    assert (unkeyed.status_code, error_code(unkeyed)) == (409, "offer_closed")


@pytest.mark.parametrize(("answer", "code"), [("accept", 201), ("decline", 200)])
def test_a_retried_answer_whose_kept_response_was_lost_is_replayed_by_the_event(
    api: Api, answer, code
):
    bob, carol = api.user("bob"), api.user("carol")
    event_id, offer_id, _organizer = offer_to(api, bob)
    api.book(carol, event_id)
    path = f"/api/offers/{offer_id}/{answer}"
    first = api.post(path, bob, headers=_key("lost"))
    with api.components.read_model.database.transaction() as cursor:
        cursor.execute("DELETE FROM idempotency_responses")
    stored = history_types(api, event_id)
    retry = api.post(path, bob, headers=_key("lost"))
    assert retry.status_code == code
    assert retry.json == first.json
    assert history_types(api, event_id) == stored


def test_a_retried_refusal_is_replayed_too(api: Api):
    bob = api.user("bob")
    _event_id, offer_id, organizer = offer_to(api, bob)
    first = api.post(f"/api/offers/{offer_id}/accept", organizer, headers=_key("nope"))
    assert first.status_code == 403
    retry = api.post(f"/api/offers/{offer_id}/accept", organizer, headers=_key("nope"))
    assert (retry.status_code, retry.json) == (403, first.json)


def test_an_offer_made_by_a_keyed_cancellation_is_in_its_replayed_answer(api: Api):
    organizer, alice, bob = (api.user(n) for n in ("organizer", "alice", "bob"))
    event_id = create_offer_event(api, organizer)
    api.book(alice, event_id)
    api.book(bob, event_id)
    body = {"eventId": event_id}
    first = api.post("/api/cancel", alice, json=body, headers=_key("c"))
    retry = api.post("/api/cancel", alice, json=body, headers=_key("c"))
    assert retry.json == first.json
    assert [o["userId"] for o in first.json["offeredTo"]] == [bob.id]


def test_a_retried_offer_mode_creation_creates_one_event_whatever_the_defaults_spelling(api: Api):
    organizer = api.user("organizer")
    short = {"name": "Once", "totalTickets": 2, "waitlistMode": "offer"}
    first = api.post("/api/events", organizer, json=short, headers=_key("create"))
    spelled = short | {"offerTtlSeconds": 3600}
    retry = api.post("/api/events", organizer, json=spelled, headers=_key("create"))
    assert first.status_code == retry.status_code == 201
    assert retry.json == first.json
    auto = {"name": "Auto", "totalTickets": 2}
    auto_first = api.post("/api/events", organizer, json=auto, headers=_key("auto"))
    auto_spelled = auto | {"waitlistMode": "auto"}
    auto_retry = api.post("/api/events", organizer, json=auto_spelled, headers=_key("auto"))
    assert auto_retry.json == auto_first.json
    assert len(api.get("/api/events", organizer).json["items"]) == 2
    other = api.post(
        "/api/events", organizer, json=short | {"offerTtlSeconds": 60}, headers=_key("create")
    )
    assert (other.status_code, error_code(other)) == (422, "idempotency_key_reused")
    datetime.fromisoformat(first.json["createdAt"])
