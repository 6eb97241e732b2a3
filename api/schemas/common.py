"""Building blocks shared by the request and response schemas.

Request schemas are strict: unknown fields are refused, integers must be JSON integers (a
boolean or a float is not one) and query integers plain ASCII digits, booleans must be JSON
booleans, strings have a length cap, and names show every character they hold.
Field names are snake_case in Python and camelCase on the wire.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from uuid import UUID

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from domain.entries import OFFER_PREFIX, make_entry_id, parse_entry_id
from domain.user import INVISIBLE_CATEGORIES

MAX_ID_LENGTH = 100
MAX_CURSOR_LENGTH = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


class CamelCaseSchema(Schema):
    """Python attributes in snake_case, JSON keys in camelCase (marshmallow's own recipe)."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.data_key = camel_case(field_obj.data_key or field_name)


class RequestSchema(CamelCaseSchema):
    class Meta:
        unknown = RAISE


class StrictBoolean(fields.Boolean):
    """Only JSON ``true``/``false``: marshmallow's Boolean would also take 1, "yes" or "on"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean (use true or false).")
        return value


def strict_integer(minimum: int, maximum: int | None = None, **kwargs: Any) -> fields.Integer:
    """A JSON integer within bounds; ``True`` and ``1.0`` are refused."""
    return fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum), **kwargs)


def bounded_string(minimum: int, maximum: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=minimum, max=maximum), **kwargs)


class QueryInteger(fields.Integer):
    """A whole number in a query string, spelled in ASCII digits only: ``int()`` would also
    read ``5_0`` as 50, a full-width ``１`` as 1, and accept ``+5`` or `` 5``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise ValidationError("Must be a whole number written in the digits 0-9.")
        return super()._deserialize(value, attr, data, **kwargs)


def query_integer(minimum: int, maximum: int, **kwargs: Any) -> QueryInteger:
    return QueryInteger(validate=validate.Range(min=minimum, max=maximum), **kwargs)


def shows_every_character(value: str) -> None:
    """Validator for names, which people (and terminals) are shown: no control character,
    no format character (zero-width ones, bidi overrides), no line or paragraph separator."""
    hidden = sorted(
        {f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in INVISIBLE_CATEGORIES}
    )
    if hidden:
        raise ValidationError(
            f"Must not contain control or invisible characters (found {', '.join(hidden)})."
        )


class EntityId(fields.String):
    """An opaque id; a UUID in any spelling Python accepts is read in its canonical form, so
    the write side and the read models (which compare strings) name the same thing."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        return canonical_id(super()._deserialize(value, attr, data, **kwargs))


def canonical_id(value: str) -> str:
    return parse_id(value) or value


def parse_id(value: str) -> str | None:
    """The canonical spelling of the UUID ``value`` is, or ``None`` when it is not one."""
    try:
        return str(UUID(value))
    except ValueError:
        return None


def parse_offer_id(value: str) -> str | None:
    """``value`` when it is an offer id as the service spells them, else ``None``: an id in
    any other spelling (upper case, braces, other digits, NUL) names no offer."""
    parsed = parse_entry_id(value) if value.isascii() else None
    if parsed is None or parsed[0] != OFFER_PREFIX or parsed[2] < 1:
        return None
    return value if make_entry_id(*parsed) == value else None


def entity_id(**kwargs: Any) -> fields.String:
    return EntityId(validate=validate.Length(min=1, max=MAX_ID_LENGTH), **kwargs)


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


def page_size() -> QueryInteger:
    return query_integer(1, MAX_PAGE_SIZE, load_default=DEFAULT_PAGE_SIZE)


class PageQuery(RequestSchema):
    """``?limit=&cursor=`` of every list."""

    limit = page_size()
    cursor = fields.String(load_default=None, validate=validate.Length(max=MAX_CURSOR_LENGTH))


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


def page_of(item_schema: type[Schema], name: str) -> type[Schema]:
    """A response schema ``{"items": [...], "nextCursor": str | null}`` named ``name``."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "nextCursor": fields.String(allow_none=True, required=True),
        },
        name=name,
    )
