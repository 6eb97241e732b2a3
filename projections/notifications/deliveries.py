"""An endpoint's deliveries as the webhook API lists them, and the retry an owner asks for."""

from __future__ import annotations

import re

from adapters.sql import ReadModelDatabase
from domain.errors import DomainError
from projections.notifications.tables import PENDING, moment, now
from projections.queries import decode_cursor, encode_cursor
from projections.tables import Row

DELIVERY_ID = re.compile(r"dlv_[0-9a-f]{32}")
DELIVERY_PREFIX = "dlv_"


class DeliveryNotFound(DomainError):
    code = "delivery_not_found"


def page(
    database: ReadModelDatabase, webhook_id: str, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """``webhook_id``'s deliveries, newest message first, each with its message's ``type``."""
    params: list[object] = [webhook_id]
    after = ""
    if cursor:
        position, delivery_id = decode_cursor(cursor, int, str)
        after = "AND (d.position < ? OR (d.position = ? AND d.delivery_id < ?))"
        params += [position, position, delivery_id]
    rows = database.query(
        "SELECT d.*, m.type FROM notification_deliveries d "
        "JOIN notification_messages m ON m.message_id = d.message_id "
        f"WHERE d.webhook_id = ? {after} "
        "ORDER BY d.position DESC, d.delivery_id DESC LIMIT ?",
        [*params, limit + 1],
    )
    items = rows[:limit]
    last = items[-1] if len(rows) > limit else None
    return items, encode_cursor(last["position"], last["delivery_id"]) if last else None


def retry(database: ReadModelDatabase, webhook_id: str, delivery_id: str) -> None:
    """Make the delivery due now, whatever became of it (delivered ones are sent again)."""
    if DELIVERY_ID.fullmatch(delivery_id) is None:
        raise DeliveryNotFound("No such delivery of this webhook.")
    with database.transaction(immediate=True) as cursor:
        stamp = moment(now(), cursor.postgres)
        updated = cursor.execute(
            "UPDATE notification_deliveries SET status = ?, next_attempt_at = ?, "
            "updated_at = ? WHERE delivery_id = ? AND webhook_id = ?",
            [PENDING, stamp, stamp, delivery_id, webhook_id],
        )
    if not updated:
        raise DeliveryNotFound("No such delivery of this webhook.")
