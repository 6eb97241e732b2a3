"""Steps the dispatcher tests share: endpoints to a local receiver, bookings that make
messages, a dispatcher with a short retry schedule, and what the deliveries came to."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

from adapters.sql import ReadModelDatabase
from domain.service import TicketingService
from projections.notifications.dispatcher import Dispatcher
from projections.notifications.mailer import Mailer
from projections.notifications.webhook_sender import WebhookSender
from tests.notifications.support import follow, webhooks

# Retries within a test's patience; the contract's schedule is tested on its own.
SHORT_RETRIES = (0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2)


def hook(
    store: TicketingService,
    database_url: str,
    owner_id: str,
    url: str,
    types: list[str] | None = None,
) -> tuple[str, str]:
    """A new enabled endpoint at ``url``: its id and its secret."""
    with webhooks(store, database_url) as hooks:
        row, secret = hooks.create(owner_id, url, types or ["*"])
    return row["webhook_id"], secret


def bookings(store: TicketingService, organizer_id: str, count: int, tickets: int = 1000) -> str:
    """An event of ``organizer_id`` with ``count`` bookings; its id."""
    event_id = store.create_event(organizer_id, "Concert", tickets).id
    for _ in range(count):
        store.book(event_id, str(uuid4()))
    return event_id


def made(store: TicketingService, database_url: str, *, mail: bool = False) -> None:
    """The outbox's messages and deliveries of everything stored so far."""
    follow(store, database_url, mail=mail)


@contextmanager
def dispatching(
    store: TicketingService,
    database_url: str,
    *,
    sender: WebhookSender | None = None,
    mailer: Mailer | None = None,
    start: bool = True,
    **options: Any,
) -> Iterator[Dispatcher]:
    """A dispatcher (running unless ``start`` is false) on the store; local endpoints are
    allowed unless ``sender`` says otherwise."""
    options.setdefault("retry_delays", SHORT_RETRIES)
    options.setdefault("poll_interval", 0.02)
    dispatcher = Dispatcher(
        database_url,
        sender=sender or WebhookSender(allow_http=True, allow_private=True, timeout=2.0),
        mailer=mailer,
        head=lambda: store.recorder.max_notification_id() or 0,
        **options,
    )
    if start:
        dispatcher.start()
    try:
        yield dispatcher
    finally:
        dispatcher.close()


def rows(database_url: str, where: str = "1 = 1", params: list[Any] | None = None) -> list[dict]:
    """Deliveries, with their message's type, in position order."""
    database = ReadModelDatabase(database_url)
    try:
        return database.query(
            "SELECT d.*, m.type, m.payload FROM notification_deliveries d "
            "JOIN notification_messages m ON m.message_id = d.message_id "
            f"WHERE {where} ORDER BY d.position, d.delivery_id",
            params or [],
        )
    finally:
        database.close()


def endpoint_row(database_url: str, webhook_id: str) -> dict[str, Any]:
    database = ReadModelDatabase(database_url)
    try:
        return database.query("SELECT * FROM webhooks WHERE webhook_id = ?", [webhook_id])[0]
    finally:
        database.close()


def settled(database_url: str, webhook_id: str | None = None) -> bool:
    """Whether no delivery (of ``webhook_id``) is pending any more."""
    where, params = "d.status = ?", ["pending"]
    if webhook_id is not None:
        where, params = where + " AND d.webhook_id = ?", [*params, webhook_id]
    return not rows(database_url, where, params)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll until ``predicate`` returns something truthy; that value (falsy at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)
