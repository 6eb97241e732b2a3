"""What the read side says about offers over HTTP: a holder's status, the caller's open
offers, the organizer's queue, an account's deletion, and the auditor's history and state."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.conftest import Api, error_code
from tests.api.offering import create_offer_event, free_a_seat, history_types, offer_to, status

OFFER_FIELDS = {"offerId", "eventId", "eventName", "waitingListId", "quantity", "expiresAt"}


def _status_of(api: Api, caller, event_id: str, user_id: str) -> dict:
    response = api.get(f"/api/booking-status/{event_id}/{user_id}", caller)
    assert response.status_code == 200, response.json
    return response.json


def _history(api: Api, caller, event_id: str) -> list[dict]:
    response = api.get(f"/api/events/{event_id}/history", caller)
    assert response.status_code == 200, response.json
    return response.json["items"]


# -------------------------------------------------------------- booking status
def test_a_waiting_holder_with_an_open_offer_is_offered(api: Api):
    bob = api.user("bob")
    before = datetime.now().astimezone()
    event_id, offer_id, organizer = offer_to(api, bob, ttl=600)
    for caller in (bob, organizer):
        body = _status_of(api, caller, event_id, bob.id)
        assert body["status"] == "offered"
        assert (body["offerId"], body["offerQuantity"]) == (offer_id, 1)
        assert (body["waitingQuantity"], body["position"]) == (1, 1)
        assert "bookingId" not in body
        deadline = datetime.fromisoformat(body["expiresAt"])
        assert before + timedelta(seconds=600) <= deadline
        assert deadline <= datetime.now().astimezone() + timedelta(seconds=600)
    api.post(f"/api/offers/{offer_id}/accept", bob)
    accepted = _status_of(api, bob, event_id, bob.id)
    assert accepted["status"] == "confirmed"
    assert not {"offerId", "offerQuantity", "expiresAt", "waitingListId"} & set(accepted)


def test_a_partial_holder_with_an_open_offer_stays_confirmed_and_names_the_offer(api: Api):
    organizer, alice, bob = (api.user(n) for n in ("organizer", "alice", "bob"))
    event_id = create_offer_event(api, organizer, total=2, per_user=2)
    api.book(alice, event_id)
    partial = api.book(bob, event_id, quantity=2).json
    (offer,) = free_a_seat(api, alice, event_id)
    body = _status_of(api, bob, event_id, bob.id)
    assert body["status"] == "confirmed"
    assert (body["bookingId"], body["quantity"]) == (partial["bookingId"], 1)
    assert (body["offerId"], body["offerQuantity"]) == (offer["offerId"], 1)
    datetime.fromisoformat(body["expiresAt"])


def test_an_offer_that_expired_leaves_the_holder_without_an_entry(api: Api, move_clock):
    bob = api.user("bob")
    event_id, offer_id, organizer = offer_to(api, bob, ttl=60)
    move_clock(timedelta(seconds=61))
    # Any command on the event settles its due offers; a capacity change is one.
    api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 1})
    body = _status_of(api, bob, event_id, bob.id)
    assert body["status"] not in ("offered", "waitlisted", "confirmed")
    assert "offerId" not in body
    assert api.get("/api/users/me/offers", bob).json["items"] == []


# ---------------------------------------------------------- the caller's offers
def test_my_offers_lists_the_callers_open_offers_and_nobody_elses(api: Api):
    bob, carol = api.user("bob"), api.user("carol")
    event_id, offer_id, _organizer = offer_to(api, bob)
    api.book(carol, event_id)
    response = api.get("/api/users/me/offers", bob)
    assert response.status_code == 200
    (item,) = response.json["items"]
    assert response.json["nextCursor"] is None
    assert set(item) == OFFER_FIELDS
    entry = _status_of(api, bob, event_id, bob.id)
    assert item == {
        "offerId": offer_id,
        "eventId": event_id,
        "eventName": "Recital",
        "waitingListId": entry["waitingListId"],
        "quantity": 1,
        "expiresAt": entry["expiresAt"],
    }
    assert api.get("/api/users/me/offers", carol).json["items"] == []
    api.post(f"/api/offers/{offer_id}/accept", bob)
    assert api.get("/api/users/me/offers", bob).json["items"] == []


def test_my_offers_pages_with_limit_and_cursor_soonest_deadline_first(api: Api):
    bob = api.user("bob")
    offers = [offer_to(api, bob, ttl=ttl)[1] for ttl in (900, 300, 600)]
    expected = [offers[1], offers[2], offers[0]]
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = api.get(f"/api/users/me/offers{query}", bob).json
        seen += [item["offerId"] for item in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert (seen, pages) == (expected, 2)
    refused = api.get("/api/users/me/offers?limit=0", bob)
    assert (refused.status_code, error_code(refused)) == (400, "validation_error")
    foreign = api.get("/api/users/me/offers?cursor=not-ours", bob)
    assert (foreign.status_code, error_code(foreign)) == (400, "validation_error")


def test_my_bookings_shows_an_offered_holding(api: Api):
    bob = api.user("bob")
    event_id, offer_id, _organizer = offer_to(api, bob)
    (item,) = api.get("/api/users/me/bookings", bob).json["items"]
    assert (item["eventId"], item["status"], item["offerId"]) == (event_id, "offered", offer_id)


def test_the_organizers_queue_names_the_open_offers(api: Api):
    bob, carol = api.user("bob"), api.user("carol")
    event_id, offer_id, organizer = offer_to(api, bob)
    api.book(carol, event_id)
    items = api.get(f"/api/events/{event_id}/waitlist", organizer).json["items"]
    assert [(i["userId"], i["position"]) for i in items] == [(bob.id, 1), (carol.id, 2)]
    assert (items[0]["offerId"], items[0]["offerQuantity"]) == (offer_id, 1)
    datetime.fromisoformat(items[0]["expiresAt"])
    assert "offerId" not in items[1]


# ------------------------------------------------------------ account deletion
def test_deleting_my_account_declines_my_offers_and_offers_the_seats_on(api: Api):
    bob, carol = api.user("bob"), api.user("carol")
    event_id, offer_id, organizer = offer_to(api, bob)
    api.book(carol, event_id)
    assert api.delete("/api/users/me", bob).status_code == 204
    types = history_types(api, event_id)
    assert types[-2:] == ["OfferDeclined", "OfferMade"]
    (carols,) = api.get("/api/users/me/offers", carol).json["items"]
    assert carols["offerId"] != offer_id
    counts = status(api, organizer, event_id)
    assert (counts["heldTickets"], counts["waitingListCount"]) == (1, 1)


# ---------------------------------------------------------------------- audit
def test_history_names_every_offer_event_with_its_ids_and_deadline(api: Api, move_clock):
    bob, carol, dave = api.user("bob"), api.user("carol"), api.user("dave")
    event_id, offer_id, organizer = offer_to(api, bob, ttl=60)
    api.book(carol, event_id)
    api.book(dave, event_id)
    declined = api.post(f"/api/offers/{offer_id}/decline", bob).json["offeredTo"]
    move_clock(timedelta(seconds=61))
    api.post(f"/api/events/{event_id}/capacity", organizer, json={"totalTickets": 1})
    (daves,) = api.get("/api/users/me/offers", dave).json["items"]
    accepted = api.post(f"/api/offers/{daves['offerId']}/accept", dave).json
    items = _history(api, organizer, event_id)
    by_type: dict[str, list[dict]] = {}
    for item in items:
        by_type.setdefault(item["type"], []).append(item["data"])
    made = by_type["OfferMade"]
    assert [m["userId"] for m in made] == [bob.id, carol.id, dave.id]
    assert {"offerId", "userId", "waitingListId", "quantity", "expiresAt"} <= set(made[0])
    assert made[1]["offerId"] == declined[0]["offerId"]
    (declined_data,) = by_type["OfferDeclined"]
    assert (declined_data["offerId"], declined_data["userId"]) == (offer_id, bob.id)
    (expired,) = by_type["OfferExpired"]
    assert (expired["userId"], expired["expiresAt"]) == (carol.id, made[1]["expiresAt"])
    (accepted_data,) = by_type["OfferAccepted"]
    assert (accepted_data["bookingId"], accepted_data["quantity"]) == (accepted["bookingId"], 1)
    documented = set(
        api.get("/api/openapi.json").json["components"]["schemas"]["HistoryItem"]["properties"][
            "type"
        ]["enum"]
    )
    assert {item["type"] for item in items} <= documented
    log = api.get("/api/audit/log", api.user("auditor", "auditor")).json["items"]
    assert {"OfferMade", "OfferDeclined", "OfferExpired", "OfferAccepted"} <= {
        item["type"] for item in log if item["eventId"] == event_id
    }


def test_state_at_a_version_shows_the_seats_held_then(api: Api):
    bob = api.user("bob")
    event_id, offer_id, organizer = offer_to(api, bob)
    offered_at = len(history_types(api, event_id))
    api.post(f"/api/offers/{offer_id}/accept", bob)
    then = api.get(f"/api/events/{event_id}/state?version={offered_at}", organizer).json
    assert (then["heldTickets"], then["bookedTickets"], then["availableTickets"]) == (1, 0, 0)
    assert then["waitlistMode"] == "offer"
    assert then["waitlist"][0]["offerId"] == offer_id
    now = api.get(f"/api/events/{event_id}/state", organizer).json
    assert (now["heldTickets"], now["bookedTickets"], now["waitlist"]) == (0, 1, [])


def test_the_read_models_verify_consistent_after_offers(api: Api):
    bob, carol = api.user("bob"), api.user("carol")
    event_id, offer_id, organizer = offer_to(api, bob)
    api.book(carol, event_id)
    api.post(f"/api/offers/{offer_id}/decline", bob)
    admin = api.user("admin", "admin")
    body = api.get(f"/api/audit/verify/{event_id}", admin).json
    assert (body["consistent"], body["differences"]) == (True, [])
