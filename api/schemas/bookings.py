"""Booking, cancelling, and the lists of bookings and waitlist entries."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from api.schemas.common import CamelCaseSchema, RequestSchema, entity_id, page_of, strict_integer
from api.schemas.offers import OfferedToSchema
from domain.event import MAX_TICKETS_PER_USER

BOOKING_STATUSES = ["confirmed", "waitlisted", "offered", "cancelled", "none"]


class BookSchema(RequestSchema):
    event_id = entity_id(required=True)
    quantity = strict_integer(1, MAX_TICKETS_PER_USER, load_default=1)
    user_id = entity_id()


class CancelSchema(RequestSchema):
    booking_id = entity_id()
    waiting_list_id = entity_id()
    event_id = entity_id()

    @validates_schema
    def exactly_one_target(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len(data) != 1:
            raise ValidationError(
                "Give exactly one of bookingId, waitingListId, eventId.", field_name="_body"
            )


class WaitlistPartSchema(CamelCaseSchema):
    waiting_list_id = fields.String(required=True)
    quantity = fields.Integer(required=True)
    position = fields.Integer(required=True)


class BookingConfirmedSchema(CamelCaseSchema):
    booking_id = fields.String(required=True)
    event_id = fields.String(required=True)
    user_id = fields.String(required=True)
    quantity = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.Equal("confirmed"))
    waitlisted = fields.Nested(WaitlistPartSchema)


class BookingWaitlistedSchema(CamelCaseSchema):
    waiting_list_id = fields.String(required=True)
    event_id = fields.String(required=True)
    user_id = fields.String(required=True)
    quantity = fields.Integer(required=True)
    position = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.Equal("waitlisted"))
    message = fields.String(required=True)


class ReassignmentSchema(CamelCaseSchema):
    user_id = fields.String(required=True)
    booking_id = fields.String(required=True)
    quantity = fields.Integer(required=True)


class CancelledSchema(CamelCaseSchema):
    message = fields.String(required=True)
    reassigned = fields.Boolean(required=True)
    reassigned_to = fields.List(fields.Nested(ReassignmentSchema), required=True)
    offered_to = fields.List(
        fields.Nested(OfferedToSchema),
        required=True,
        metadata={"description": "Offers the freed seats made (offer mode; [] in auto mode)."},
    )


class BookingStatusSchema(CamelCaseSchema):
    event_id = fields.String(required=True)
    user_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(BOOKING_STATUSES))
    booking_id = fields.String()
    quantity = fields.Integer()
    waiting_list_id = fields.String()
    waiting_quantity = fields.Integer()
    position = fields.Integer()
    offer_id = fields.String()
    offer_quantity = fields.Integer()
    expires_at = fields.DateTime()


class WaitlistEntrySchema(CamelCaseSchema):
    waiting_list_id = fields.String(required=True)
    user_id = fields.String(required=True)
    quantity = fields.Integer(required=True)
    position = fields.Integer(required=True)
    joined_at = fields.DateTime(required=True)
    offer_id = fields.String(metadata={"description": "The entry's open offer, if any."})
    offer_quantity = fields.Integer()
    expires_at = fields.DateTime()


class BookingEntrySchema(CamelCaseSchema):
    booking_id = fields.String(required=True)
    user_id = fields.String(required=True)
    quantity = fields.Integer(required=True)
    booked_at = fields.DateTime(required=True)


WaitlistPageSchema = page_of(WaitlistEntrySchema, "WaitlistPage")
BookingPageSchema = page_of(BookingEntrySchema, "BookingPage")
