"""The outbox follower: turns the store's log into notification messages, exactly once.

It follows the log like the projection runner (``projections.runner``, whose loop it
shares): a batch locks the follower's tracking row (``notifications``), reads the log after
it, writes the batch's messages and deliveries, and saves the new position, all in one
transaction on the read-model database. A crash before the commit leaves nothing and the
batch is read again; after it, the position is past the batch. Ids are derived from the
domain event (``messages.message_id``) and the destination, and rows are inserted only when
new, so even two followers started by mistake (the second waits on the row lock) cannot make
a message twice.

Each domain event of a ticketed event becomes its typed messages (``messages``); a message
goes to every endpoint that was enabled at its position and wants it (``Endpoint.wants``),
whose owner may see the event (``Outbox.receives``), and, when e-mail is configured, to the
person it concerns. The dispatcher delivers what this leaves pending.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid5

from adapters.log_reader import StoreLog
from adapters.sql import Cursor
from domain.user import User
from projections import tracking
from projections.notifications.directory import Directory
from projections.notifications.messages import (
    ALL,
    MESSAGE_NAMESPACE,
    EventFacts,
    Message,
    is_notified,
    messages_of,
)
from projections.notifications.schema import TRACKING_NAME
from projections.notifications.tables import (
    DELIVERIES,
    EMAIL,
    MESSAGES,
    PENDING,
    WEBHOOK,
    moment,
    now,
)
from projections.runner import EVENT_TOPIC_PREFIX, ProjectionRunner
from projections.tables import Row, Table

USER_TOPIC_PREFIX = User.TOPIC + "."
INSERT_CHUNK = 100  # rows per statement: 100 x 15 columns, far below SQLite's variable limit
LISTEN_APPLICATION_NAME = "ticketing-outbox"

logger = logging.getLogger("ticketing.outbox")


@dataclass(frozen=True)
class Endpoint:
    """An enabled webhook as the follower matches messages to it."""

    webhook_id: str
    owner_id: str
    event_types: frozenset[str]
    event_id: str | None
    from_position: int
    until_position: int | None
    paused_ranges: tuple[tuple[int, int], ...]

    def wants(self, message: Message) -> bool:
        """Enabled at the message's position, for its type and (if it names one) its
        event; whose events it may see is ``Outbox.receives``'s question."""
        return (
            self.enabled_at(message.position)
            and (ALL in self.event_types or message.type in self.event_types)
            and (self.event_id is None or self.event_id == message.event_id)
        )

    def enabled_at(self, position: int) -> bool:
        return (
            self.from_position < position
            and (self.until_position is None or position <= self.until_position)
            and not any(after < position <= until for after, until in self.paused_ranges)
        )


class OutboxFollower(ProjectionRunner):
    """Follows the store's ``log`` (or the log of the store ``database_url`` names) and
    writes messages and deliveries; ``mail`` makes mail deliveries too (SMTP configured)."""

    name = "outbox"
    logger = logger
    listen_application_name = LISTEN_APPLICATION_NAME

    def __init__(
        self,
        database_url: str | None = None,
        *,
        log: StoreLog | None = None,
        mail: bool = False,
        batch_size: int = 200,
        poll_interval: float = 0.5,
        settle_interval: float = 0.025,
    ) -> None:
        super().__init__(
            database_url,
            log=log,
            batch_size=batch_size,
            poll_interval=poll_interval,
            settle_interval=settle_interval,
            tracking_name=TRACKING_NAME,
        )
        self.mail = mail
        self.directory = Directory(self.log.events)

    def apply_batch(self, cursor: Cursor) -> int:
        """Inside the caller's transaction: one batch's messages and the new position."""
        position = tracking.lock(cursor, self.tracking_name)
        notifications = self.log.recorder.select_notifications(position + 1, self.batch_size)
        if not notifications:
            return 0
        endpoints = listening_endpoints(cursor, position)
        if endpoints or self.mail:
            messages, deliveries = self._outbox(notifications, endpoints, cursor.postgres)
            insert_new(cursor, MESSAGES, messages)
            insert_new(cursor, DELIVERIES, deliveries)
        else:
            # Nobody to tell: the batch is not even decoded, so users seen before may change
            # unseen.
            self.directory.forget_users()
        tracking.save(cursor, self.tracking_name, notifications[-1].id)
        return len(notifications)

    def _outbox(
        self, notifications: list[Any], endpoints: list[Endpoint], postgres: bool
    ) -> tuple[list[Row], list[Row]]:
        outbox = Outbox(self.directory, endpoints, self.mail, moment(now(), postgres), postgres)
        for notification in notifications:
            topic = notification.topic
            if topic.startswith(EVENT_TOPIC_PREFIX) or topic.startswith(USER_TOPIC_PREFIX):
                domain_event = self.log.mapper.to_domain_event(notification)
                self.directory.observe(domain_event)
                if topic.startswith(EVENT_TOPIC_PREFIX) and is_notified(domain_event):
                    outbox.add(domain_event, notification.id)
        return outbox.messages, outbox.deliveries


class Outbox:
    """One batch's rows: each message of a domain event with its deliveries."""

    def __init__(
        self,
        directory: Directory,
        endpoints: list[Endpoint],
        mail: bool,
        stamp: datetime | str,
        postgres: bool,
    ) -> None:
        self.directory = directory
        self.endpoints = endpoints
        self.mail = mail
        self.stamp = stamp
        self.postgres = postgres
        self.messages: list[Row] = []
        self.deliveries: list[Row] = []

    def add(self, domain_event: Any, position: int) -> None:
        facts = self.directory.event(str(domain_event.originator_id))
        if facts is None:  # an aggregate that is not a ticketed event
            return
        for message in messages_of(domain_event, position, facts):
            deliveries = [
                self._delivery(message, WEBHOOK, endpoint.webhook_id, endpoint.webhook_id)
                for endpoint in self.endpoints
                if endpoint.wants(message) and self.receives(endpoint, facts)
            ]
            if self.mail and message.concerned is not None:
                address = self.directory.email_of(message.concerned)
                if address is not None:
                    deliveries.append(
                        self._delivery(message, EMAIL, message.concerned, recipient=address)
                    )
            if deliveries:
                self.messages.append(self._message(message))
                self.deliveries.extend(deliveries)

    def receives(self, endpoint: Endpoint, event: EventFacts) -> bool:
        """Whether the endpoint's owner may see the event's messages now: its organizer, or
        an admin (a deleted account's endpoints receive nothing; a revoked admin's only
        what it organizes)."""
        owner = endpoint.owner_id
        if not self.directory.is_live(owner):
            return False
        return event.organizer_id == owner or self.directory.is_admin(owner)

    def _message(self, message: Message) -> Row:
        return MESSAGES.row(
            message_id=message.message_id,
            position=message.position,
            event_id=message.event_id,
            type=message.type,
            occurred_at=moment(message.occurred_at, self.postgres),
            payload=message.payload,
            created_at=self.stamp,
        )

    def _delivery(
        self,
        message: Message,
        channel: str,
        destination: str,
        webhook_id: str | None = None,
        *,
        recipient: str | None = None,
    ) -> Row:
        return DELIVERIES.row(
            delivery_id=delivery_id(message.message_id, channel, destination),
            message_id=message.message_id,
            position=message.position,
            channel=channel,
            webhook_id=webhook_id,
            recipient=recipient,
            status=PENDING,
            attempts=0,
            next_attempt_at=self.stamp,
            created_at=self.stamp,
            updated_at=self.stamp,
        )


def delivery_id(message_id: str, channel: str, destination: str) -> str:
    """Derived from the message and where it goes: a message reaches a destination once."""
    return "dlv_" + uuid5(MESSAGE_NAMESPACE, f"{message_id}:{channel}:{destination}").hex


def listening_endpoints(cursor: Cursor, position: int) -> list[Endpoint]:
    """The webhooks that may hear of what is stored after ``position``: the enabled ones,
    and those disabled after it. Held (on PostgreSQL) until the batch commits, so that a
    change or a deletion waits for the deliveries the batch makes for them."""
    lock = " FOR SHARE" if cursor.postgres else ""
    rows = cursor.all(
        "SELECT webhook_id, owner_id, event_types, event_id, from_position, until_position, "
        f"paused_ranges FROM webhooks WHERE enabled = ? OR until_position > ?{lock}",
        [True, position],
    )
    return [
        Endpoint(
            row["webhook_id"],
            row["owner_id"],
            frozenset(json.loads(row["event_types"])),
            row["event_id"],
            int(row["from_position"]),
            None if row["until_position"] is None else int(row["until_position"]),
            tuple((after, until) for after, until in json.loads(row["paused_ranges"])),
        )
        for row in rows
    ]


def insert_new(cursor: Cursor, table: Table, rows: list[Row]) -> None:
    """Insert the rows whose key is not there yet."""
    columns = table.column_names
    one_row = f"({', '.join('?' * len(columns))})"
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        cursor.execute(
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES {', '.join([one_row] * len(chunk))} "
            f"ON CONFLICT ({', '.join(table.primary_key)}) DO NOTHING",
            [row[column] for row in chunk for column in columns],
        )
