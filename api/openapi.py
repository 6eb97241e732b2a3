"""The OpenAPI 3 document, generated from the routes and the schemas that validate them.

Each view declares its contract with ``@documented(...)``: the request schema it loads, the
response schema of each success status, and the error statuses it can answer. The document
is assembled from the app's URL map, so a route cannot exist undocumented without a test
noticing (see tests/api/test_openapi.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from api.schemas.common import ErrorSchema, camel_case

View = TypeVar("View", bound=Callable[..., Any])

IGNORED_METHODS = {"HEAD", "OPTIONS"}
ERROR_DESCRIPTIONS = {
    400: "Invalid request (`validation_error`, `invalid_json`).",
    401: "Missing, invalid, expired or revoked token (`unauthorized`, `token_expired`).",
    403: "Authenticated but not allowed (`forbidden`).",
    404: "Not found (`event_not_found`, `booking_not_found`, `user_not_found`, `offer_not_found`).",
    409: "Conflicts with the current state (`already_booked`, `already_cancelled`, "
    "`event_closed`, `capacity_below_booked`, `email_taken`, `username_taken`, "
    "`offer_expired`, `offer_closed`).",
    413: "Body over 64 KiB (`payload_too_large`).",
    415: "Body is not JSON (`unsupported_media_type`).",
    422: "Idempotency-Key reused with another request (`idempotency_key_reused`).",
    429: "Rate limit exceeded (`rate_limited`); see `Retry-After`.",
    503: "The event is busy (`service_busy`); see `Retry-After`.",
}
PATH_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    responses: dict[int, type[Schema] | str]
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    errors: tuple[int, ...] = ()
    auth: bool = True
    idempotent: bool = False
    description: str = ""


def documented(
    summary: str,
    *,
    tag: str,
    responses: dict[int, type[Schema] | str],
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    errors: tuple[int, ...] = (),
    auth: bool = True,
    idempotent: bool = False,
    description: str = "",
) -> Callable[[View], View]:
    """Attach the view's contract; a string response is a description without a body."""
    operation = Operation(
        summary, tag, responses, body, query, errors, auth, idempotent, description
    )

    def mark(view: View) -> View:
        view.openapi = operation  # type: ignore[attr-defined]
        return view

    return mark


def openapi_path(rule: str) -> str:
    """Flask's ``/events/<event_id>`` as OpenAPI's ``/events/{eventId}``."""
    return PATH_ARGUMENT.sub(lambda match: "{" + camel_case(match.group(1)) + "}", rule)


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="Ticketing API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Event-sourced ticket booking: events, bookings, a FIFO waiting "
            "list (its freed seats booked at once, or offered for a limited time), and an "
            "auditable history of every change."
        },
    )
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.schema("Error", schema=ErrorSchema)
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        operation: Operation | None = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if operation is None:
            continue
        path = openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            # One view may serve several paths (/health and /api/health): ids must differ.
            operation_id = rule.endpoint.replace(".", "_")
            if operation_id in operation_ids:
                operation_id += re.sub(r"\W+", "_", rule.rule)
            operation_ids.add(operation_id)
            paths.setdefault(path, {})[method.lower()] = _operation(
                operation, rule.arguments, operation_id
            )
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(operation: Operation, arguments: set[str], operation_id: str) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"in": "path", "name": camel_case(name), "required": True, "schema": {"type": "string"}}
        for name in sorted(arguments)
    ]
    if operation.query is not None:
        parameters.append({"in": "query", "schema": operation.query})
    if operation.idempotent:
        parameters.append(
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "description": "Retry-safe writes: the same key and body replay the first "
                "response; the same key with another body is 422. Kept 24 h.",
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    responses: dict[str, Any] = {}
    for status, schema in operation.responses.items():
        if isinstance(schema, str):
            responses[str(status)] = {"description": schema}
        else:
            responses[str(status)] = {
                "description": "Success.",
                "content": {"application/json": {"schema": schema}},
            }
    errors = set(operation.errors) | {429, 500}
    if operation.auth:
        errors.add(401)
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, "Unexpected error (`internal_error`)."),
            "content": {"application/json": {"schema": "Error"}},
        }
    result: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": operation_id,
        "tags": [operation.tag],
        "parameters": parameters,
        "responses": responses,
        "security": [{"bearerAuth": []}] if operation.auth else [],
    }
    if operation.description:
        result["description"] = operation.description
    if operation.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": operation.body}},
        }
    return result
