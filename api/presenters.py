"""Domain results rendered as the JSON documents of the HTTP contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.accounts import UserView
from domain.event import BookingOutcome, CancelOutcome
from domain.service import EventView


def iso(moment: datetime) -> str:
    return moment.isoformat()


def user_json(user: UserView) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "roles": list(user.roles),
        "createdAt": iso(user.created_at),
    }


def event_created_json(event: EventView) -> dict[str, Any]:
    return {
        "eventId": event.id,
        "name": event.name,
        "totalTickets": event.total_tickets,
        "availableTickets": event.available_tickets,
        "maxTicketsPerUser": event.max_tickets_per_user,
        "organizerId": event.organizer_id,
        "createdAt": iso(event.created_at),
    }


def event_status_json(event: EventView) -> dict[str, Any]:
    """The write model's status, in the same shape as the read model's ``event_status``."""
    return {
        "eventId": event.id,
        "name": event.name,
        "totalTickets": event.total_tickets,
        "availableTickets": event.available_tickets,
        "bookedTickets": event.booked_tickets,
        "waitingListCount": event.waiting_list_count,
        "status": "closed" if event.closed else "open",
        "version": event.version,
        "maxTicketsPerUser": event.max_tickets_per_user,
        "organizerId": event.organizer_id,
        "createdAt": iso(event.created_at),
    }


def booking_json(event_id: str, user_id: str, outcome: BookingOutcome) -> tuple[dict, int]:
    """201 when any seat was booked (with the waitlisted rest, if any); 202 when only queued."""
    if outcome.booking_id is None:
        return {
            "waitingListId": outcome.waiting_list_id,
            "eventId": event_id,
            "userId": user_id,
            "quantity": outcome.waiting_quantity,
            "position": outcome.position,
            "status": "waitlisted",
            "message": "The event is sold out; you are on the waiting list.",
        }, 202
    body: dict[str, Any] = {
        "bookingId": outcome.booking_id,
        "eventId": event_id,
        "userId": user_id,
        "quantity": outcome.quantity,
        "status": "confirmed",
    }
    if outcome.waiting_list_id is not None:
        body["waitlisted"] = {
            "waitingListId": outcome.waiting_list_id,
            "quantity": outcome.waiting_quantity,
            "position": outcome.position,
        }
    return body, 201


def cancellation_json(outcome: CancelOutcome) -> dict[str, Any]:
    reassigned = [
        {"userId": r["userId"], "bookingId": r["bookingId"], "quantity": r["quantity"]}
        for r in outcome.reassigned
    ]
    message = "Cancelled."
    if reassigned:
        message = f"Cancelled; {len(reassigned)} waiting holder(s) received the freed seats."
    return {"message": message, "reassigned": bool(reassigned), "reassignedTo": reassigned}
