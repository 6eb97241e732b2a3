"""Webhook endpoints and their signing secrets: what the webhook API reads and writes.

Rows come back named as stored (``projections.notifications.tables``), with ``event_types``
as a list and ``enabled`` as a bool. Who may do what is the API's to check; here an id
that names no endpoint is ``WebhookNotFound``, without a query when it cannot be one.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from adapters.sql import Cursor, ReadModelDatabase
from domain.errors import DomainError
from projections import tracking
from projections.notifications.schema import TRACKING_NAME
from projections.notifications.tables import WEBHOOK_SECRETS, WEBHOOKS, moment, now
from projections.queries import InvalidCursor, decode_cursor, encode_cursor, iso
from projections.tables import Row

WEBHOOK_PREFIX = "wh_"
WEBHOOK_ID = re.compile(r"wh_[0-9a-f]{32}")
SECRET_PREFIX = "whsec_"
# Standard Webhooks asks for 24 to 64 bytes of key.
SECRET_BYTES = 32
# A replaced secret keeps signing this long, so receivers can switch without losing one.
ROTATION_OVERLAP = timedelta(hours=24)
UPDATABLE = ("url", "event_types", "enabled", "description")


class WebhookNotFound(DomainError):
    code = "webhook_not_found"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def is_webhook_id(value: str) -> bool:
    return WEBHOOK_ID.fullmatch(value) is not None


class Webhooks:
    """The endpoints, on the read-model database. ``head`` is the store's last position: an
    endpoint receives messages of what is stored after it was registered."""

    def __init__(self, database: ReadModelDatabase, head: Callable[[], int]) -> None:
        self.database = database
        self.head = head

    def create(
        self,
        owner_id: str,
        url: str,
        event_types: list[str],
        event_id: str | None = None,
        description: str | None = None,
    ) -> tuple[Row, str]:
        """A new enabled endpoint and its first secret (shown to its owner only now)."""
        webhook_id = WEBHOOK_PREFIX + uuid4().hex
        secret = new_secret()
        at = now()
        with self.database.transaction(immediate=True) as cursor:
            stamp = moment(at, cursor.postgres)
            row = WEBHOOKS.row(
                webhook_id=webhook_id,
                owner_id=owner_id,
                url=url,
                event_types=json.dumps(event_types),
                event_id=event_id,
                description=description,
                enabled=True,
                from_position=self.head(),
                paused_ranges="[]",
                created_at=stamp,
                updated_at=stamp,
            )
            _insert(cursor, WEBHOOKS.name, row)
            _insert(
                cursor,
                WEBHOOK_SECRETS.name,
                WEBHOOK_SECRETS.row(
                    webhook_id=webhook_id, generation=1, secret=secret, created_at=stamp
                ),
            )
        return self.get(webhook_id), secret

    def get(self, webhook_id: str) -> Row:
        if not is_webhook_id(webhook_id):
            raise WebhookNotFound("No such webhook.")
        rows = self.database.query("SELECT * FROM webhooks WHERE webhook_id = ?", [webhook_id])
        if not rows:
            raise WebhookNotFound("No such webhook.")
        return _decoded(rows[0])

    def page(
        self, owner_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Row], str | None]:
        """Endpoints oldest first: ``owner_id``'s, or every one when it is None (an admin)."""
        where, params = [], []
        if owner_id is not None:
            where.append("owner_id = ?")
            params.append(owner_id)
        if cursor:
            created_at, webhook_id = decode_cursor(cursor, str, str)
            try:
                after: Any = datetime.fromisoformat(created_at)
            except ValueError:
                raise InvalidCursor("cursor is not one this service issued") from None
            after = moment(after, self.database.is_postgres)
            where.append("(created_at > ? OR (created_at = ? AND webhook_id > ?))")
            params += [after, after, webhook_id]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.database.query(
            f"SELECT * FROM webhooks {clause} ORDER BY created_at, webhook_id LIMIT ?",
            [*params, limit + 1],
        )
        items = [_decoded(row) for row in rows[:limit]]
        last = items[-1] if len(rows) > limit else None
        next_cursor = encode_cursor(iso(last["created_at"]), last["webhook_id"]) if last else None
        return items, next_cursor

    def update(self, webhook_id: str, changes: dict[str, Any]) -> Row:
        """Change ``url``, ``event_types``, ``enabled`` and/or ``description``; enabling
        clears why it was disabled (a 410, say)."""
        current = self.get(webhook_id)
        values = {name: changes[name] for name in UPDATABLE if name in changes}
        if "event_types" in values:
            values["event_types"] = json.dumps(values["event_types"])
        if values.get("enabled", current["enabled"]) != current["enabled"]:
            values["disabled_reason"] = None
            values.update(self._resume(current) if values["enabled"] else self._pause())
        with self.database.transaction(immediate=True) as cursor:
            values["updated_at"] = moment(now(), cursor.postgres)
            assignments = ", ".join(f"{name} = ?" for name in values)
            updated = cursor.execute(
                f"UPDATE webhooks SET {assignments} WHERE webhook_id = ?",
                [*values.values(), webhook_id],
            )
        if not updated:
            raise WebhookNotFound("No such webhook.")
        return self.get(webhook_id)

    def _pause(self) -> Row:
        """It hears of nothing stored from now on (see the tables' reference)."""
        return {"until_position": self.head()}

    def _resume(self, current: Row) -> Row:
        """It hears of what is stored from now on, and still of nothing stored while it was
        disabled (pauses the follower has passed are forgotten)."""
        passed = tracking.position(self.database, TRACKING_NAME)
        paused = [[after, until] for after, until in current["paused_ranges"] if until > passed]
        if current["until_position"] is not None and self.head() > passed:
            paused.append([current["until_position"], self.head()])
        return {"until_position": None, "paused_ranges": json.dumps(paused)}

    def delete(self, webhook_id: str) -> None:
        """The endpoint, its secrets and its deliveries, in one transaction."""
        self.get(webhook_id)
        with self.database.transaction(immediate=True) as cursor:
            # The endpoint's row first: a follower's batch that is making deliveries for it
            # holds it (FOR SHARE), so its deliveries are committed before these go.
            deleted = cursor.execute("DELETE FROM webhooks WHERE webhook_id = ?", [webhook_id])
            cursor.execute("DELETE FROM webhook_secrets WHERE webhook_id = ?", [webhook_id])
            cursor.execute("DELETE FROM notification_deliveries WHERE webhook_id = ?", [webhook_id])
        if not deleted:
            raise WebhookNotFound("No such webhook.")

    def rotate_secret(self, webhook_id: str) -> str:
        """A new current secret; the one it replaces signs for ``ROTATION_OVERLAP`` more, and
        those expired before are dropped."""
        self.get(webhook_id)
        secret = new_secret()
        with self.database.transaction(immediate=True) as cursor:
            at = now()
            stamp = moment(at, cursor.postgres)
            cursor.execute(
                "DELETE FROM webhook_secrets WHERE webhook_id = ? AND expires_at <= ?",
                [webhook_id, stamp],
            )
            cursor.execute(
                "UPDATE webhook_secrets SET expires_at = ? "
                "WHERE webhook_id = ? AND expires_at IS NULL",
                [moment(at + ROTATION_OVERLAP, cursor.postgres), webhook_id],
            )
            row = cursor.one(
                "SELECT MAX(generation) AS latest FROM webhook_secrets WHERE webhook_id = ?",
                [webhook_id],
            )
            generation = int(row["latest"] or 0) + 1 if row else 1
            _insert(
                cursor,
                WEBHOOK_SECRETS.name,
                WEBHOOK_SECRETS.row(
                    webhook_id=webhook_id, generation=generation, secret=secret, created_at=stamp
                ),
            )
        return secret


def signing_secrets(cursor: Cursor, webhook_id: str, at: datetime) -> list[str]:
    """The secrets that sign a delivery to ``webhook_id`` made at ``at``: the current one
    first, then any replaced one still within its overlap."""
    rows = cursor.all(
        "SELECT secret FROM webhook_secrets WHERE webhook_id = ? "
        "AND (expires_at IS NULL OR expires_at > ?) ORDER BY generation DESC",
        [webhook_id, moment(at, cursor.postgres)],
    )
    return [row["secret"] for row in rows]


def _insert(cursor: Cursor, table: str, row: Row) -> None:
    names = ", ".join(row)
    cursor.execute(
        f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values())
    )


def _decoded(row: Row) -> Row:
    return {
        **row,
        "event_types": json.loads(row["event_types"]),
        "paused_ranges": json.loads(row["paused_ranges"]),
        "enabled": bool(row["enabled"]),
    }
