"""Ticketed events: creation, capacity, and the status the read model serves."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from api.schemas.common import (
    CamelCaseSchema,
    RequestSchema,
    not_blank,
    page_of,
    shows_every_character,
    strict_integer,
)
from domain.event import (
    AUTO,
    DEFAULT_OFFER_TTL_SECONDS,
    MAX_OFFER_TTL_SECONDS,
    MAX_TICKETS_PER_USER,
    MAX_TOTAL_TICKETS,
    MIN_OFFER_TTL_SECONDS,
    OFFER,
    WAITLIST_MODES,
)


class CreateEventSchema(RequestSchema):
    name = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=255), not_blank, shows_every_character],
    )
    total_tickets = strict_integer(1, MAX_TOTAL_TICKETS, required=True)
    max_tickets_per_user = strict_integer(1, MAX_TICKETS_PER_USER, load_default=1)
    waitlist_mode = fields.String(
        validate=validate.OneOf(WAITLIST_MODES),
        metadata={
            "default": AUTO,
            "description": "How freed seats reach the waiting list: `auto` books them for "
            "its head at once; `offer` holds them and offers them to its head for "
            "`offerTtlSeconds`.",
        },
    )
    offer_ttl_seconds = strict_integer(
        MIN_OFFER_TTL_SECONDS,
        MAX_OFFER_TTL_SECONDS,
        metadata={
            "default": DEFAULT_OFFER_TTL_SECONDS,
            "description": "How long an offer holds its seats; only with waitlistMode offer.",
        },
    )

    @validates_schema
    def per_user_within_capacity(self, data: dict[str, Any], **kwargs: Any) -> None:
        total, per_user = data.get("total_tickets"), data.get("max_tickets_per_user")
        if total is not None and per_user is not None and per_user > total:
            raise ValidationError("Must not exceed totalTickets.", field_name="maxTicketsPerUser")

    @validates_schema
    def offer_ttl_only_with_offers(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "offer_ttl_seconds" in data and data.get("waitlist_mode") != OFFER:
            raise ValidationError(
                "Applies only with waitlistMode offer.", field_name="offerTtlSeconds"
            )

    @post_load
    def one_spelling_per_request(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Defaults spelled out or left out make the same request (and the same idempotency
        fingerprint): auto mode is named by leaving the mode out, as before offers existed,
        and an offer-mode event always names its time to live."""
        if data.get("waitlist_mode") == AUTO:
            del data["waitlist_mode"]
        elif data.get("waitlist_mode") == OFFER:
            data.setdefault("offer_ttl_seconds", DEFAULT_OFFER_TTL_SECONDS)
        return data


class CapacitySchema(RequestSchema):
    total_tickets = strict_integer(1, MAX_TOTAL_TICKETS, required=True)


def waitlist_mode_field() -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(WAITLIST_MODES))


def offer_ttl_field() -> fields.Integer:
    return fields.Integer(
        required=True, allow_none=True, metadata={"description": "null in auto mode."}
    )


class EventCreatedSchema(CamelCaseSchema):
    event_id = fields.String(required=True)
    name = fields.String(required=True)
    total_tickets = fields.Integer(required=True)
    available_tickets = fields.Integer(required=True)
    held_tickets = fields.Integer(required=True)
    max_tickets_per_user = fields.Integer(required=True)
    waitlist_mode = waitlist_mode_field()
    offer_ttl_seconds = offer_ttl_field()
    organizer_id = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class EventStatusSchema(CamelCaseSchema):
    event_id = fields.String(required=True)
    name = fields.String(required=True)
    total_tickets = fields.Integer(required=True)
    available_tickets = fields.Integer(required=True)
    booked_tickets = fields.Integer(required=True)
    held_tickets = fields.Integer(
        required=True, metadata={"description": "Seats held for open offers (0 in auto mode)."}
    )
    waiting_list_count = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "closed"]))
    version = fields.Integer(required=True)
    waitlist_mode = waitlist_mode_field()
    offer_ttl_seconds = offer_ttl_field()
    max_tickets_per_user = fields.Integer()
    organizer_id = fields.String()
    created_at = fields.DateTime()


EventPageSchema = page_of(EventStatusSchema, "EventPage")
