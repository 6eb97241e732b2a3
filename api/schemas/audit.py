"""History, point-in-time state, the global audit log, and read-model verification."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from api.schemas.bookings import BookingEntrySchema, WaitlistEntrySchema
from api.schemas.common import CamelCaseSchema, RequestSchema, page_size, query_integer
from api.schemas.events import EventStatusSchema

# Versions and log positions are 64-bit integers in both stores; a query number beyond
# JSON's safe integers could only overflow the driver (a 500), never name a real event.
MAX_POSITION = 2**53 - 1

DOMAIN_EVENT_TYPES = [
    "EventInitialized",
    "TicketBooked",
    "Waitlisted",
    "Cancelled",
    "Reassigned",
    "CapacityChanged",
    "EventClosed",
    "OfferMade",
    "OfferAccepted",
    "OfferDeclined",
    "OfferExpired",
]


class HistoryQuery(RequestSchema):
    from_version = query_integer(1, MAX_POSITION, load_default=1)
    limit = page_size()


class StateQuery(RequestSchema):
    version = query_integer(1, MAX_POSITION)
    # A moment without an offset is read as UTC rather than refused.
    at = fields.AwareDateTime(format="iso", default_timezone=UTC)

    @validates_schema
    def at_most_one_point(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "version" in data and "at" in data:
            raise ValidationError("Give version or at, not both.", field_name="_query")


class AuditLogQuery(RequestSchema):
    after = query_integer(0, MAX_POSITION, load_default=0)
    limit = page_size()


class HistoryItemSchema(CamelCaseSchema):
    version = fields.Integer(required=True)
    type = fields.String(required=True, validate=validate.OneOf(DOMAIN_EVENT_TYPES))
    occurred_at = fields.DateTime(required=True)
    data = fields.Dict(required=True)


class HistorySchema(CamelCaseSchema):
    event_id = fields.String(required=True)
    items = fields.List(fields.Nested(HistoryItemSchema), required=True)
    next_version = fields.Integer(allow_none=True, required=True)


class EventStateSchema(EventStatusSchema):
    bookings = fields.List(fields.Nested(BookingEntrySchema), required=True)
    waitlist = fields.List(fields.Nested(WaitlistEntrySchema), required=True)


class AuditLogItemSchema(HistoryItemSchema):
    position = fields.Integer(required=True)
    event_id = fields.String(required=True)


class AuditLogSchema(CamelCaseSchema):
    items = fields.List(fields.Nested(AuditLogItemSchema), required=True)
    next = fields.Integer(allow_none=True, required=True)


class VerificationSchema(CamelCaseSchema):
    consistent = fields.Boolean(required=True)
    differences = fields.List(fields.Raw(), required=True)
