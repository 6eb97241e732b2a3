"""Booking, cancelling, a holder's status, and an event's bookings and waiting list."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api import composition
from api.auth import (
    authenticated,
    caller_id,
    current_user,
    require_manager,
    require_self_or_manager,
    revoked_user,
)
from api.errors import forbidden
from api.idempotency import idempotency
from api.lookups import event_status
from api.openapi import documented
from api.parsing import json_body, query_args
from api.presenters import (
    booking_item_json,
    booking_json,
    booking_status_json,
    cancellation_json,
    page_json,
    waiting_item_json,
)
from api.schemas.bookings import (
    BookingConfirmedSchema,
    BookingPageSchema,
    BookingStatusSchema,
    BookingWaitlistedSchema,
    BookSchema,
    CancelledSchema,
    CancelSchema,
    WaitlistPageSchema,
)
from api.schemas.common import PageQuery
from domain.errors import UserNotFound

bp = Blueprint("bookings", __name__, url_prefix="/api")


@bp.post("/book")
@authenticated
@documented(
    "Book seats, or join the waiting list when too few are left",
    tag="bookings",
    body=BookSchema,
    responses={201: BookingConfirmedSchema, 202: BookingWaitlistedSchema},
    errors=(400, 403, 404, 409, 413, 415, 422, 503),
    idempotent=True,
    description="201 when seats were booked (a partial booking also carries `waitlisted` "
    "for the rest); 202 when the event is sold out and the caller joined the waiting list.",
)
def book() -> ResponseReturnValue:
    data = json_body(BookSchema)
    user_id = caller_id()
    if data.get("user_id", user_id) != user_id:
        raise forbidden("You can only book for yourself.")
    try:
        outcome = composition.service().book(
            data["event_id"], user_id, data["quantity"], idempotency=idempotency(user_id, data)
        )
    except UserNotFound:  # the account was deleted while this booking was under way
        return revoked_user()
    return booking_json(data["event_id"], user_id, outcome)


@bp.post("/cancel")
@authenticated
@documented(
    "Cancel a booking, a waitlist entry, or the caller's holding for an event",
    tag="bookings",
    body=CancelSchema,
    responses={200: CancelledSchema},
    errors=(400, 403, 404, 409, 413, 415, 422, 503),
    idempotent=True,
)
def cancel() -> ResponseReturnValue:
    data = json_body(CancelSchema)
    user = current_user()
    _event_id, outcome = composition.service().cancel(
        user.id,
        booking_id=data.get("booking_id"),
        waiting_list_id=data.get("waiting_list_id"),
        event_id=data.get("event_id"),
        actor_is_admin=user.is_admin,
        idempotency=idempotency(user.id, data),
    )
    return cancellation_json(outcome)


@bp.get("/booking-status/<event_id>/<user_id>")
@authenticated
@documented(
    "A user's booking status for an event (the user, the organizer or an admin)",
    tag="bookings",
    responses={200: BookingStatusSchema},
    errors=(403, 404),
)
def booking_status(event_id: str, user_id: str) -> ResponseReturnValue:
    status = event_status(event_id)
    require_self_or_manager(current_user(), user_id, status["organizerId"])
    return booking_status_json(
        event_id, user_id, composition.reads().booking_status(event_id, user_id)
    )


@bp.get("/events/<event_id>/waitlist")
@authenticated
@documented(
    "An event's waiting list in queue order (organizer or admin)",
    tag="bookings",
    query=PageQuery,
    responses={200: WaitlistPageSchema},
    errors=(400, 403, 404),
)
def waitlist(event_id: str) -> ResponseReturnValue:
    require_manager(current_user(), event_status(event_id)["organizerId"])
    page = query_args(PageQuery)
    items, next_cursor = composition.reads().waitlist(event_id, page["limit"], page["cursor"])
    return page_json(items, next_cursor, waiting_item_json)


@bp.get("/events/<event_id>/bookings")
@authenticated
@documented(
    "An event's active bookings (organizer or admin)",
    tag="bookings",
    query=PageQuery,
    responses={200: BookingPageSchema},
    errors=(400, 403, 404),
)
def bookings(event_id: str) -> ResponseReturnValue:
    require_manager(current_user(), event_status(event_id)["organizerId"])
    page = query_args(PageQuery)
    items, next_cursor = composition.reads().bookings(event_id, page["limit"], page["cursor"])
    return page_json(items, next_cursor, booking_item_json)
