"""The health probe's own shape (deliberately not the error shape)."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.common import CamelCaseSchema


class HealthSchema(CamelCaseSchema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "degraded"]))
    timestamp = fields.DateTime(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
