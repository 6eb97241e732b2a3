"""Steps the offer tests share: an event in offer mode, a sold-out queue, a freed seat."""

from __future__ import annotations

from uuid import uuid4

from tests.api.conftest import Api, Caller


def create_offer_event(
    api: Api,
    organizer: Caller,
    total: int = 1,
    per_user: int = 1,
    ttl: int | None = None,
    name: str = "Recital",
) -> str:
    body: dict = {
        "name": name,
        "totalTickets": total,
        "maxTicketsPerUser": per_user,
        "waitlistMode": "offer",
    }
    if ttl is not None:
        body["offerTtlSeconds"] = ttl
    response = api.post("/api/events", organizer, json=body)
    assert response.status_code == 201, response.json
    return response.json["eventId"]


def free_a_seat(api: Api, holder: Caller, event_id: str) -> list[dict]:
    """``holder`` cancels their holding at ``event_id``; the offers its seats made."""
    response = api.post("/api/cancel", holder, json={"eventId": event_id})
    assert response.status_code == 200, response.json
    return response.json["offeredTo"]


def offer_to(api: Api, waiting: Caller, ttl: int | None = None) -> tuple[str, str, Caller]:
    """A one-seat offer-mode event whose seat is on offer to ``waiting``:
    (event id, offer id, the organizer)."""
    suffix = uuid4().hex[:8]
    organizer = api.user(f"organizer-{suffix}")
    holder = api.user(f"holder-{suffix}")
    event_id = create_offer_event(api, organizer, ttl=ttl)
    api.book(holder, event_id)
    assert api.book(waiting, event_id).status_code == 202
    (offer,) = free_a_seat(api, holder, event_id)
    assert offer["userId"] == waiting.id
    return event_id, offer["offerId"], organizer


def status(api: Api, caller: Caller, event_id: str) -> dict:
    """The event's status, held to the seat invariant on the way."""
    body = api.get(f"/api/status/{event_id}", caller).json
    assert (
        body["bookedTickets"] + body["heldTickets"] + body["availableTickets"]
        == (body["totalTickets"])
    ), body
    return body


def history_types(api: Api, event_id: str) -> list[str]:
    return [type(e).__name__ for e in api.components.service.history(event_id)]
