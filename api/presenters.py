"""Domain results and read-model rows rendered as the JSON documents of the HTTP contract.

Rows come named as stored (the columns of ``projections.tables``), whether read from the read
models or derived from the write model; this module alone gives them the contract's names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from domain.accounts import UserView
from domain.entries import AcceptOutcome, BookingOutcome, CancelOutcome, DeclineOutcome
from domain.views import EventView
from projections.queries import iso
from projections.replay import view_status_row

Row = Mapping[str, Any]


def user_json(user: UserView) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "roles": list(user.roles),
        "createdAt": iso(user.created_at),
    }


def event_created_json(event: EventView) -> dict[str, Any]:
    row = view_status_row(event)
    return {
        "eventId": row["event_id"],
        "name": row["name"],
        "totalTickets": row["total_tickets"],
        "availableTickets": row["available_tickets"],
        "heldTickets": row["held_tickets"],
        "maxTicketsPerUser": row["max_tickets_per_user"],
        **_policy_fields(row),
        "organizerId": row["organizer_id"],
        "createdAt": iso(row["created_at"]),
    }


def _policy_fields(row: Row) -> dict[str, Any]:
    """How the event hands freed seats on: ``offerTtlSeconds`` is null in auto mode."""
    return {"waitlistMode": row["waitlist_mode"], "offerTtlSeconds": row["offer_ttl_seconds"]}


def event_status_json(status: Row | EventView) -> dict[str, Any]:
    """An event's status, from its ``event_status`` row (read, or replayed from the store)
    or from the write service's view of the event a command just changed."""
    row = view_status_row(status) if isinstance(status, EventView) else status
    return {
        "eventId": row["event_id"],
        "name": row["name"],
        "totalTickets": row["total_tickets"],
        "availableTickets": row["available_tickets"],
        "bookedTickets": row["booked_tickets"],
        "heldTickets": row["held_tickets"],
        "waitingListCount": row["waiting_list_count"],
        "status": row["status"],
        "version": row["version"],
        **_policy_fields(row),
        "maxTicketsPerUser": row["max_tickets_per_user"],
        "organizerId": row["organizer_id"],
        "createdAt": iso(row["created_at"]),
    }


def event_state_json(state: Row) -> dict[str, Any]:
    """An event replayed to a version or a moment: its status, bookings and waiting list."""
    return event_status_json(state) | {
        "bookings": [booking_item_json(row) for row in state["bookings"]],
        "waitlist": [waiting_item_json(row) for row in state["waitlist"]],
    }


def page_json(rows: list[Row], next_cursor: str | None, item: Callable[[Row], dict]) -> dict:
    return {"items": [item(row) for row in rows], "nextCursor": next_cursor}


def webhook_json(webhook: Row) -> dict[str, Any]:
    """A webhook endpoint, without its secret."""
    return {
        "webhookId": webhook["webhook_id"],
        "ownerId": webhook["owner_id"],
        "url": webhook["url"],
        "eventTypes": list(webhook["event_types"]),
        "eventId": webhook["event_id"],
        "description": webhook["description"],
        "enabled": webhook["enabled"],
        "disabledReason": webhook["disabled_reason"],
        "createdAt": iso(webhook["created_at"]),
        "updatedAt": iso(webhook["updated_at"]),
    }


def delivery_json(delivery: Row) -> dict[str, Any]:
    return {
        "deliveryId": delivery["delivery_id"],
        "messageId": delivery["message_id"],
        "type": delivery["type"],
        "status": delivery["status"],
        "attempts": delivery["attempts"],
        "lastAttemptAt": iso(delivery["last_attempt_at"]),
        "lastStatusCode": delivery["last_status_code"],
        "nextAttemptAt": iso(delivery["next_attempt_at"]),
    }


def booking_item_json(booking: Row) -> dict[str, Any]:
    return {
        "bookingId": booking["booking_id"],
        "userId": booking["user_id"],
        "quantity": booking["quantity"],
        "bookedAt": iso(booking["booked_at"]),
    }


def waiting_item_json(entry: Row) -> dict[str, Any]:
    """A queue entry; one with an open offer also names it (the seats held for it)."""
    return {
        "waitingListId": entry["waiting_list_id"],
        "userId": entry["user_id"],
        "quantity": entry["quantity_waiting"],
        "position": entry["position"],
        "joinedAt": iso(entry["joined_at"]),
        **_offer_fields(entry),
    }


def booking_status_json(event_id: str, user_id: str, holding: Row | None) -> dict[str, Any]:
    """What ``user_id`` holds at ``event_id``: ``none`` if they never held anything there."""
    fields = _holding_fields(holding) if holding is not None else {"status": "none"}
    return {"eventId": event_id, "userId": user_id, **fields}


def holding_item_json(holding: Row) -> dict[str, Any]:
    fields = _holding_fields(holding)
    return {"eventId": holding["event_id"], "eventName": holding["event_name"], **fields}


def _holding_fields(holding: Row) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": holding["status"]}
    if holding["booking_id"]:
        fields.update(bookingId=holding["booking_id"], quantity=holding["quantity"])
    if holding["waiting_list_id"]:
        fields.update(
            waitingListId=holding["waiting_list_id"],
            waitingQuantity=holding["waiting_quantity"],
            position=holding["position"],
        )
    return fields | _offer_fields(holding)


def _offer_fields(row: Row) -> dict[str, Any]:
    """The open offer of a waiting entry, named only when there is one."""
    if not row["offer_id"]:
        return {}
    return {
        "offerId": row["offer_id"],
        "offerQuantity": row["offer_quantity"],
        "expiresAt": iso(row["expires_at"]),
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
    """``offeredTo`` is in every answer (``[]`` in auto mode), so that one shape serves
    both modes; v1 clients read only the fields they know."""
    reassigned = [
        {"userId": r["userId"], "bookingId": r["bookingId"], "quantity": r["quantity"]}
        for r in outcome.reassigned
    ]
    offered = _offers_made(outcome.offered)
    message = "Cancelled."
    if reassigned:
        message = f"Cancelled; {len(reassigned)} waiting holder(s) received the freed seats."
    elif offered:
        message = f"Cancelled; the freed seats were offered to {len(offered)} waiting holder(s)."
    return {
        "message": message,
        "reassigned": bool(reassigned),
        "reassignedTo": reassigned,
        "offeredTo": offered,
    }


def accepted_json(event_id: str, outcome: AcceptOutcome) -> dict[str, Any]:
    return {
        "bookingId": outcome.booking_id,
        "eventId": event_id,
        "userId": outcome.user_id,
        "quantity": outcome.quantity,
        "status": "confirmed",
    }


def declined_json(outcome: DeclineOutcome) -> dict[str, Any]:
    offered = _offers_made(outcome.offered)
    message = "Declined; you have left the waiting list."
    if offered:
        message += f" The seats were offered to {len(offered)} waiting holder(s)."
    return {"message": message, "offeredTo": offered}


def offer_item_json(offer: Row) -> dict[str, Any]:
    return {
        "offerId": offer["offer_id"],
        "eventId": offer["event_id"],
        "eventName": offer["event_name"],
        "waitingListId": offer["waiting_list_id"],
        "quantity": offer["quantity"],
        "expiresAt": iso(offer["expires_at"]),
    }


def _offers_made(offered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"userId": o["userId"], "offerId": o["offerId"], "quantity": o["quantity"]} for o in offered
    ]
