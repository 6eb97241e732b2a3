"""Steps the notification tests share: people, endpoints, a follower, and what it made."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapters.sql import ReadModelDatabase
from domain.service import TicketingService
from projections.notifications.outbox import OutboxFollower
from projections.notifications.subscriptions import Webhooks


def person(store: TicketingService, name: str) -> str:
    """A registered account's id (``name@example.com``)."""
    return store.accounts.register_user(name, f"{name}@example.com", "password123").id


@contextmanager
def webhooks(store: TicketingService, database_url: str) -> Iterator[Webhooks]:
    database = ReadModelDatabase(database_url)
    try:
        yield Webhooks(database, lambda: store.recorder.max_notification_id() or 0)
    finally:
        database.close()


def endpoint(
    store: TicketingService,
    database_url: str,
    owner_id: str,
    types: list[str] | None = None,
    event_id: str | None = None,
) -> str:
    """A new enabled endpoint's id."""
    with webhooks(store, database_url) as hooks:
        row, _secret = hooks.create(owner_id, "https://8.8.8.8/hook", types or ["*"], event_id)
    return row["webhook_id"]


def follow(store: TicketingService, database_url: str, *, mail: bool = False) -> int:
    """Run the outbox follower over everything stored; returns how many log entries."""
    follower = OutboxFollower(database_url, log=store, mail=mail, batch_size=7)
    try:
        return follower.process_available()
    finally:
        follower.close()


def deliveries(database_url: str) -> list[dict[str, Any]]:
    """Every delivery with its message's type, data and message id, in store order."""
    database = ReadModelDatabase(database_url)
    try:
        rows = database.query(
            "SELECT d.channel, d.webhook_id, d.recipient, d.delivery_id, d.status, "
            "d.attempts, m.message_id, m.type, m.payload, m.position "
            "FROM notification_deliveries d JOIN notification_messages m "
            "ON m.message_id = d.message_id ORDER BY m.position, m.type, d.delivery_id"
        )
    finally:
        database.close()
    for row in rows:
        body = json.loads(row.pop("payload"))
        row["data"] = body["data"]
        row["timestamp"] = body["timestamp"]
        assert body["type"] == row["type"]
    return rows


def types_heard(database_url: str, webhook_id: str) -> list[str]:
    return [row["type"] for row in deliveries(database_url) if row["webhook_id"] == webhook_id]


def mails(database_url: str) -> list[tuple[str, str]]:
    """(type, recipient) of each mail delivery, in store order."""
    return [
        (row["type"], row["recipient"])
        for row in deliveries(database_url)
        if row["channel"] == "email"
    ]
