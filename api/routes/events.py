"""Ticketed events: create, list, read status, close, change capacity."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api import composition
from api.auth import authenticated, caller_id, current_user
from api.idempotency import idempotency
from api.lookups import event_status
from api.openapi import documented
from api.parsing import json_body, query_args
from api.presenters import event_created_json, event_status_json, page_json
from api.schemas.common import PageQuery, RequestSchema
from api.schemas.events import (
    CapacitySchema,
    CreateEventSchema,
    EventCreatedSchema,
    EventPageSchema,
    EventStatusSchema,
)
from domain.event import AUTO

bp = Blueprint("events", __name__, url_prefix="/api")

MANAGE_ERRORS = (400, 403, 404, 409, 413, 415, 422, 503)


@documented(
    "Create a ticketed event (the caller becomes its organizer)",
    tag="events",
    body=CreateEventSchema,
    responses={201: EventCreatedSchema},
    errors=(400, 413, 415, 422, 503),
    idempotent=True,
)
def create_event() -> ResponseReturnValue:
    data = json_body(CreateEventSchema)
    user_id = caller_id()
    event = composition.service().create_event(
        user_id,
        data["name"],
        data["total_tickets"],
        data["max_tickets_per_user"],
        idempotency=idempotency(user_id, data),
        waitlist_mode=data.get("waitlist_mode", AUTO),
        offer_ttl_seconds=data.get("offer_ttl_seconds"),
    )
    return event_created_json(event), 201


# The contract names both paths; each gets its own endpoint so the document lists both.
bp.add_url_rule("/initialize", "initialize", authenticated(create_event), methods=["POST"])
bp.add_url_rule("/events", "create_event", authenticated(create_event), methods=["POST"])


@bp.get("/events")
@authenticated
@documented(
    "List events, oldest first",
    tag="events",
    query=PageQuery,
    responses={200: EventPageSchema},
    errors=(400,),
)
def list_events() -> ResponseReturnValue:
    page = query_args(PageQuery)
    items, next_cursor = composition.reads().list_events(page["limit"], page["cursor"])
    return page_json(items, next_cursor, event_status_json)


@bp.get("/events/<event_id>")
@authenticated
@documented("An event's status", tag="events", responses={200: EventStatusSchema}, errors=(404,))
def get_event(event_id: str) -> ResponseReturnValue:
    return event_status(event_id)


@bp.get("/status/<event_id>")
@authenticated
@documented(
    "An event's seat counts and state",
    tag="events",
    responses={200: EventStatusSchema},
    errors=(404,),
)
def get_status(event_id: str) -> ResponseReturnValue:
    return event_status(event_id)


@bp.post("/events/<event_id>/close")
@authenticated
@documented(
    "Close an event to new bookings (organizer or admin)",
    tag="events",
    responses={200: EventStatusSchema},
    errors=MANAGE_ERRORS,
    idempotent=True,
)
def close_event(event_id: str) -> ResponseReturnValue:
    data = json_body(RequestSchema, optional=True)
    user = current_user()
    event = composition.service().close_event(
        event_id,
        user.id,
        actor_is_admin=user.is_admin,
        idempotency=idempotency(user.id, data),
    )
    return event_status_json(event)


@bp.post("/events/<event_id>/capacity")
@authenticated
@documented(
    "Change an event's capacity (organizer or admin); a raise serves the waiting list",
    tag="events",
    body=CapacitySchema,
    responses={200: EventStatusSchema},
    errors=MANAGE_ERRORS,
    idempotent=True,
)
def change_capacity(event_id: str) -> ResponseReturnValue:
    data = json_body(CapacitySchema)
    user = current_user()
    event = composition.service().change_capacity(
        event_id,
        user.id,
        data["total_tickets"],
        actor_is_admin=user.is_admin,
        idempotency=idempotency(user.id, data),
    )
    return event_status_json(event)
