"""The one error shape, ``{"error": {"code", "message", "details"}}``, for every layer.

Every exception the API can meet is mapped here and nowhere else: request parsing and
validation, authentication, rate limits, routing, the domain's refusals, a busy event, a
store that is unreachable for a moment (503 with Retry-After, as a busy event) and anything
unexpected (logged with the request id, never shown to the client).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from flask import Flask, Response, g, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from domain.errors import DomainError, InvalidCommand, NotAllowed, ServiceBusy
from projections.queries import InvalidCursor

log = logging.getLogger("ticketing.errors")

# The store is unreachable or overloaded for a moment (a restarting or failing-over server,
# a dropped connection, an exhausted pool, a locked SQLite file): the client should retry.
STORE_UNAVAILABLE = (
    StoreOperationalError,
    StoreInterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
STORE_RETRY_AFTER_SECONDS = 2

DOMAIN_STATUS = {
    "validation_error": 400,
    "invalid_credentials": 401,
    "forbidden": 403,
    "event_not_found": 404,
    "booking_not_found": 404,
    "user_not_found": 404,
    "webhook_not_found": 404,
    "delivery_not_found": 404,
    "offer_not_found": 404,
    "already_booked": 409,
    "already_cancelled": 409,
    "event_closed": 409,
    "capacity_below_booked": 409,
    "email_taken": 409,
    "username_taken": 409,
    "offer_expired": 409,
    "offer_closed": 409,
    "idempotency_key_reused": 422,
}

HTTP_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "rate_limited",
    431: "headers_too_large",
}

HTTP_MESSAGES = {
    404: "No such resource.",
    405: "This method is not allowed here.",
    413: "The request body is larger than 64 KiB.",
    415: "The request body must be JSON (Content-Type: application/json).",
}


class ApiError(Exception):
    """An error raised by the HTTP layer itself (as opposed to the domain's refusals)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def forbidden(message: str = "You are not allowed to do this.") -> ApiError:
    return ApiError(403, "forbidden", message)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "validation_error", "The request is invalid.", {field: [message]})


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    """Answer every exception a request can meet in the one error shape."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(ValidationError, _validation_error)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(ServiceBusy, _service_busy)
    for store_error in (*STORE_UNAVAILABLE, sqlite3.OperationalError):
        app.register_error_handler(store_error, _store_unavailable)
    app.register_error_handler(InvalidCursor, _invalid_cursor)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _api_error(error: ApiError) -> Response:
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def _validation_error(error: ValidationError) -> Response:
    messages = error.messages if isinstance(error.messages, dict) else {"_body": error.messages}
    return error_response(400, "validation_error", "The request is invalid.", messages)


def _domain_error(error: DomainError) -> Response:
    if isinstance(error, InvalidCommand):
        field = error.details.get("field")
        details = {field: [error.message]} if field else dict(error.details)
        return error_response(400, "validation_error", error.message, details)
    if isinstance(error, NotAllowed):
        return error_response(403, "forbidden", error.message)
    status = DOMAIN_STATUS.get(error.code, 400)
    return error_response(status, error.code, error.message, dict(error.details))


def _invalid_cursor(error: InvalidCursor) -> Response:
    return error_response(
        400, "validation_error", "The request is invalid.", {"cursor": [str(error)]}
    )


def _service_busy(error: ServiceBusy) -> Response:
    g.retry_after = error.retry_after
    return error_response(
        503, "service_busy", error.message, {}, {"Retry-After": str(error.retry_after)}
    )


def _store_unavailable(error: Exception) -> Response:
    """A store error that the service's own retries did not absorb: 503, never a 500."""
    if isinstance(error, sqlite3.OperationalError) and not _is_sqlite_busy(error):
        return _unexpected_error(error)  # e.g. a missing table: a bug or an unmigrated store
    g.store_unavailable = True  # api.metrics counts the answers that say so
    log.warning(
        "store unavailable: %s",
        type(error).__name__,
        extra={"request_id": g.get("request_id", "")},
    )
    busy = ServiceBusy(
        "The store is unavailable for a moment, please retry.", STORE_RETRY_AFTER_SECONDS
    )
    return _service_busy(busy)


def _is_sqlite_busy(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return "locked" in message or "busy" in message


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        return _unexpected_error(error)
    headers: dict[str, str] = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if status == 429:
        return error_response(
            429, "rate_limited", f"Too many requests: the limit is {error.description}.", {}
        )
    code = HTTP_CODES.get(status, "bad_request")
    message = HTTP_MESSAGES.get(status) or error.description or "The request was refused."
    return error_response(status, code, message, {}, headers)


def _unexpected_error(error: Exception) -> Response:
    request_id = g.get("request_id", "")
    log.error(
        "unhandled error",
        exc_info=(type(error), error, error.__traceback__),
        extra={"request_id": request_id},
    )
    return error_response(
        500,
        "internal_error",
        "Something went wrong on our side. Quote the request id when reporting it.",
        {"requestId": request_id},
    )
