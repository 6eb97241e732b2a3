"""Waitlist offers: the seats held for a waiting holder, and the answers to accepting or
declining them."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.common import CamelCaseSchema, page_of


class OfferedToSchema(CamelCaseSchema):
    """An offer that freed seats made to a head of the queue."""

    user_id = fields.String(required=True)
    offer_id = fields.String(required=True)
    quantity = fields.Integer(required=True)


class OfferAcceptedSchema(CamelCaseSchema):
    booking_id = fields.String(required=True)
    event_id = fields.String(required=True)
    user_id = fields.String(required=True)
    quantity = fields.Integer(
        required=True, metadata={"description": "The booking's seats, the accepted ones included."}
    )
    status = fields.String(required=True, validate=validate.Equal("confirmed"))


class OfferDeclinedSchema(CamelCaseSchema):
    message = fields.String(required=True)
    offered_to = fields.List(fields.Nested(OfferedToSchema), required=True)


class OfferSchema(CamelCaseSchema):
    offer_id = fields.String(required=True)
    event_id = fields.String(required=True)
    event_name = fields.String(required=True)
    waiting_list_id = fields.String(required=True)
    quantity = fields.Integer(required=True)
    expires_at = fields.DateTime(required=True)


OfferPageSchema = page_of(OfferSchema, "OfferPage")
