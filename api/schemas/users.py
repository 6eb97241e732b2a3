"""Accounts: registration, login, profile changes and roles."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from api.schemas.common import (
    CamelCaseSchema,
    RequestSchema,
    StrictBoolean,
    bounded_string,
    not_blank,
    page_of,
    shows_every_character,
)
from domain.user import GRANTABLE_ROLES

MAX_EMAIL_LENGTH = 254


def username_field(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=[validate.Length(min=3, max=100), _stripped_length, shows_every_character],
        **kwargs,
    )


def _stripped_length(value: str) -> None:
    if len(value.strip()) < 3:
        raise ValidationError("Must be at least 3 characters besides surrounding spaces.")


def email_field(**kwargs: Any) -> fields.Email:
    # A quoted local part may hold control characters by RFC 5322: not in an account's email.
    return fields.Email(
        validate=[validate.Length(max=MAX_EMAIL_LENGTH), shows_every_character], **kwargs
    )


def password_field(**kwargs: Any) -> fields.String:
    return bounded_string(8, 128, **kwargs)


class RegisterSchema(RequestSchema):
    username = username_field(required=True)
    email = email_field(required=True)
    password = password_field(required=True, load_only=True)


class LoginSchema(RequestSchema):
    email = fields.String(
        required=True, validate=[validate.Length(min=1, max=MAX_EMAIL_LENGTH), not_blank]
    )
    password = bounded_string(1, 128, required=True, load_only=True)


class UpdateMeSchema(RequestSchema):
    username = username_field()
    email = email_field()
    password = password_field(load_only=True)
    current_password = bounded_string(1, 128, load_only=True)

    @validates_schema
    def something_to_change(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not {"username", "email", "password"} & data.keys():
            raise ValidationError(
                "Give at least one of username, email, password.", field_name="_body"
            )

    @validates_schema
    def current_password_for_credentials(self, data: dict[str, Any], **kwargs: Any) -> None:
        if {"email", "password"} & data.keys() and "current_password" not in data:
            raise ValidationError(
                "Required to change the email or the password.", field_name="currentPassword"
            )


class RoleChangeSchema(RequestSchema):
    role = fields.String(required=True, validate=validate.OneOf(GRANTABLE_ROLES))
    grant = StrictBoolean(required=True)


class UserSchema(CamelCaseSchema):
    id = fields.String(required=True)
    username = fields.String(required=True)
    email = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    created_at = fields.DateTime(required=True)


class RegisteredSchema(CamelCaseSchema):
    message = fields.String(required=True)
    user = fields.Nested(UserSchema, required=True)


class LoggedInSchema(CamelCaseSchema):
    token = fields.String(required=True)
    expires_at = fields.DateTime(required=True)
    user = fields.Nested(UserSchema, required=True)


class HoldingSchema(CamelCaseSchema):
    event_id = fields.String(required=True)
    event_name = fields.String(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(["confirmed", "waitlisted", "offered"])
    )
    booking_id = fields.String()
    quantity = fields.Integer()
    waiting_list_id = fields.String()
    waiting_quantity = fields.Integer()
    position = fields.Integer()
    offer_id = fields.String()
    offer_quantity = fields.Integer()
    expires_at = fields.DateTime()


HoldingsSchema = page_of(HoldingSchema, "Holdings")
