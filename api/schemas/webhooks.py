"""Webhook endpoints, their secrets and their deliveries."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from api.schemas.common import (
    CamelCaseSchema,
    RequestSchema,
    StrictBoolean,
    entity_id,
    page_of,
    shows_every_character,
)
from projections.notifications.messages import ALL, TYPES
from projections.notifications.tables import DELIVERY_STATUSES

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500


def _types_chosen_once(values: list[str]) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("Names a type more than once.")
    if ALL in values and len(values) > 1:
        raise ValidationError(f'"{ALL}" stands alone: it is every type.')


def event_types(**kwargs: Any) -> fields.List:
    """A non-empty list of the contract's types, each once, or ``["*"]`` for every type."""
    return fields.List(
        fields.String(validate=validate.OneOf((*TYPES, ALL))),
        validate=[validate.Length(min=1, max=len(TYPES)), _types_chosen_once],
        metadata={"description": f'Types of messages to receive, or ["{ALL}"] for all.'},
        **kwargs,
    )


def url(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={
            "description": "https (http only where WEBHOOK_ALLOW_HTTP); a host that resolves "
            "to a loopback, private, link-local or metadata address is refused."
        },
        **kwargs,
    )


def description(**kwargs: Any) -> fields.String:
    return fields.String(
        allow_none=True,
        validate=[validate.Length(max=MAX_DESCRIPTION_LENGTH), shows_every_character],
        **kwargs,
    )


class CreateWebhookSchema(RequestSchema):
    url = url(required=True)
    event_types = event_types(required=True)
    event_id = entity_id(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "One event (its organizer or an admin); omitted: every event the "
            "caller organizes, now or later (every event for an admin)."
        },
    )
    description = description(load_default=None)


class UpdateWebhookSchema(RequestSchema):
    url = url()
    event_types = event_types()
    enabled = StrictBoolean()
    description = description()


class WebhookSchema(CamelCaseSchema):
    webhook_id = fields.String(required=True)
    owner_id = fields.String(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True)
    event_id = fields.String(required=True, allow_none=True)
    description = fields.String(required=True, allow_none=True)
    enabled = fields.Boolean(required=True)
    disabled_reason = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": '"gone" when a 410 disabled it; null otherwise.'},
    )
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(
        required=True, metadata={"description": "whsec_...: shown only in this answer."}
    )


class WebhookSecretSchema(CamelCaseSchema):
    webhook_id = fields.String(required=True)
    secret = fields.String(
        required=True,
        metadata={"description": "The new whsec_... secret; the one it replaces signs for 24 h."},
    )


class DeliverySchema(CamelCaseSchema):
    delivery_id = fields.String(required=True)
    message_id = fields.String(
        required=True, metadata={"description": "The webhook-id header of every attempt."}
    )
    type = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))
    attempts = fields.Integer(required=True)
    last_attempt_at = fields.DateTime(required=True, allow_none=True)
    last_status_code = fields.Integer(required=True, allow_none=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True)


class RetryAcceptedSchema(CamelCaseSchema):
    delivery_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))


WebhookPageSchema = page_of(WebhookSchema, "WebhookPage")
DeliveryPageSchema = page_of(DeliverySchema, "DeliveryPage")
