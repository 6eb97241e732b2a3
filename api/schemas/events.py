"""Ticketed events: creation, capacity, and the status the read model serves."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from api.schemas.common import (
    CamelCaseSchema,
    RequestSchema,
    not_blank,
    page_of,
    shows_every_character,
    strict_integer,
)
from domain.event import MAX_TICKETS_PER_USER, MAX_TOTAL_TICKETS


class CreateEventSchema(RequestSchema):
    name = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=255), not_blank, shows_every_character],
    )
    total_tickets = strict_integer(1, MAX_TOTAL_TICKETS, required=True)
    max_tickets_per_user = strict_integer(1, MAX_TICKETS_PER_USER, load_default=1)

    @validates_schema
    def per_user_within_capacity(self, data: dict[str, Any], **kwargs: Any) -> None:
        total, per_user = data.get("total_tickets"), data.get("max_tickets_per_user")
        if total is not None and per_user is not None and per_user > total:
            raise ValidationError("Must not exceed totalTickets.", field_name="maxTicketsPerUser")


class CapacitySchema(RequestSchema):
    total_tickets = strict_integer(1, MAX_TOTAL_TICKETS, required=True)


class EventCreatedSchema(CamelCaseSchema):
    event_id = fields.String(required=True)
    name = fields.String(required=True)
    total_tickets = fields.Integer(required=True)
    available_tickets = fields.Integer(required=True)
    max_tickets_per_user = fields.Integer(required=True)
    organizer_id = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class EventStatusSchema(CamelCaseSchema):
    event_id = fields.String(required=True)
    name = fields.String(required=True)
    total_tickets = fields.Integer(required=True)
    available_tickets = fields.Integer(required=True)
    booked_tickets = fields.Integer(required=True)
    waiting_list_count = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["open", "closed"]))
    version = fields.Integer(required=True)
    max_tickets_per_user = fields.Integer()
    organizer_id = fields.String()
    created_at = fields.DateTime()


EventPageSchema = page_of(EventStatusSchema, "EventPage")
