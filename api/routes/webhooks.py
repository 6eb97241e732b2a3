"""Webhook endpoints: register, list, read, change, delete, rotate the secret, and see and
retry their deliveries.

Who may: any user registers endpoints for the events it organizes (with ``eventId``, only
as that event's organizer); an admin for any event, or every event. Each endpoint is then
its owner's and the admins'. A URL is held to the SSRF rules (``projections.notifications.
ssrf``) whenever it is set.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api import composition
from api.auth import authenticated, current_user, require_manager
from api.errors import forbidden
from api.openapi import documented
from api.parsing import json_body, query_args
from api.presenters import delivery_json, page_json, webhook_json
from api.schemas.common import PageQuery, RequestSchema
from api.schemas.webhooks import (
    CreateWebhookSchema,
    DeliveryPageSchema,
    RetryAcceptedSchema,
    UpdateWebhookSchema,
    WebhookCreatedSchema,
    WebhookPageSchema,
    WebhookSchema,
    WebhookSecretSchema,
)
from projections.notifications import deliveries
from projections.notifications.ssrf import check_url
from projections.notifications.tables import PENDING
from projections.replay import status_row
from projections.tables import Row

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks")

WRITE_ERRORS = (400, 403, 404, 413, 415)
NOT_FOUND = "404 `webhook_not_found`."


@bp.post("")
@authenticated
@documented(
    "Register a webhook endpoint; its signing secret is shown only in this answer",
    tag="webhooks",
    body=CreateWebhookSchema,
    responses={201: WebhookCreatedSchema},
    errors=WRITE_ERRORS,
    description="With `eventId`: 403 unless the caller organizes that event (admins: any), "
    "404 `event_not_found` when there is none.",
)
def create_webhook() -> ResponseReturnValue:
    data = json_body(CreateWebhookSchema)
    user = current_user()
    if data["event_id"] is not None:
        require_manager(user, _organizer_of(data["event_id"]))
    _check_url(data["url"])
    webhook, secret = composition.webhooks().create(
        user.id, data["url"], data["event_types"], data["event_id"], data["description"]
    )
    return webhook_json(webhook) | {"secret": secret}, 201


@bp.get("")
@authenticated
@documented(
    "The caller's webhook endpoints (an admin's: every one), oldest first",
    tag="webhooks",
    query=PageQuery,
    responses={200: WebhookPageSchema},
    errors=(400,),
)
def list_webhooks() -> ResponseReturnValue:
    page = query_args(PageQuery)
    user = current_user()
    owner = None if user.is_admin else user.id
    items, next_cursor = composition.webhooks().page(owner, page["limit"], page["cursor"])
    return page_json(items, next_cursor, webhook_json)


@bp.get("/<id>")
@authenticated
@documented(
    "A webhook endpoint (its owner or an admin)",
    tag="webhooks",
    responses={200: WebhookSchema},
    errors=(403, 404),
    description=NOT_FOUND,
)
def get_webhook(id: str) -> ResponseReturnValue:
    return webhook_json(_owned(id))


@bp.patch("/<id>")
@authenticated
@documented(
    "Change a webhook endpoint's url, types, description, or enable or disable it",
    tag="webhooks",
    body=UpdateWebhookSchema,
    responses={200: WebhookSchema},
    errors=WRITE_ERRORS,
    description=NOT_FOUND + " Enabling an endpoint that a 410 disabled delivers to it again.",
)
def update_webhook(id: str) -> ResponseReturnValue:
    data = json_body(UpdateWebhookSchema)
    _owned(id)
    if "url" in data:
        _check_url(data["url"])
    return webhook_json(composition.webhooks().update(id, data))


@bp.delete("/<id>")
@authenticated
@documented(
    "Delete a webhook endpoint, its secrets and its deliveries",
    tag="webhooks",
    responses={204: "Deleted."},
    errors=(403, 404),
    description=NOT_FOUND,
)
def delete_webhook(id: str) -> ResponseReturnValue:
    _owned(id)
    composition.webhooks().delete(id)
    return "", 204


@bp.post("/<id>/rotate-secret")
@authenticated
@documented(
    "Replace the signing secret; the replaced one signs too for 24 hours",
    tag="webhooks",
    responses={200: WebhookSecretSchema},
    errors=(403, 404, 413, 415),
    description=NOT_FOUND,
)
def rotate_secret(id: str) -> ResponseReturnValue:
    json_body(RequestSchema, optional=True)
    _owned(id)
    return {"webhookId": id, "secret": composition.webhooks().rotate_secret(id)}


@bp.get("/<id>/deliveries")
@authenticated
@documented(
    "A webhook endpoint's deliveries, newest first",
    tag="webhooks",
    query=PageQuery,
    responses={200: DeliveryPageSchema},
    errors=(400, 403, 404),
    description=NOT_FOUND,
)
def list_deliveries(id: str) -> ResponseReturnValue:
    page = query_args(PageQuery)
    _owned(id)
    items, next_cursor = deliveries.page(
        composition.reads().database, id, page["limit"], page["cursor"]
    )
    return page_json(items, next_cursor, delivery_json)


@bp.post("/<id>/deliveries/<delivery_id>/retry")
@authenticated
@documented(
    "Deliver a message again now (pending, due at once; its webhook-id stays the same)",
    tag="webhooks",
    responses={202: RetryAcceptedSchema},
    errors=(403, 404, 413, 415),
    description="404 `webhook_not_found`, or `delivery_not_found` when the endpoint has no "
    "such delivery.",
)
def retry_delivery(id: str, delivery_id: str) -> ResponseReturnValue:
    json_body(RequestSchema, optional=True)
    _owned(id)
    deliveries.retry(composition.reads().database, id, delivery_id)
    return {"deliveryId": delivery_id, "status": PENDING}, 202


def _owned(id: str) -> Row:
    """The endpoint, if the caller may manage it: its owner or an admin."""
    webhook = composition.webhooks().get(id)
    user = current_user()
    if user.id != webhook["owner_id"] and not user.is_admin:
        raise forbidden("Only the webhook's owner or an admin may do this.")
    return webhook


def _organizer_of(event_id: str) -> str:
    """The event's organizer, even before the read models have it (``event_not_found``
    if there is no such event)."""
    row: Any = composition.reads().event_status(event_id)
    if row is None:
        row = status_row(composition.service().get_event(event_id))
    return row["organizer_id"]


def _check_url(url: str) -> None:
    settings = composition.settings().notifications
    check_url(url, allow_http=settings.allow_http, allow_private=settings.allow_private)
