"""The notification tables, each defined once (the DDL is derived from these, as for the
read models; they are not read models: no rebuild touches them, and only the outbox follower
and the webhook API write them).

How they fit together:

- ``webhooks``: one row per registered endpoint. ``event_id`` null means every event the
  owner organizes, now or later, or every event while the owner is an admin (decided when
  each domain event is turned into messages, so a revoked admin stops receiving other
  organizers' events). ``event_types`` is a JSON array of the contract's types, or
  ``["*"]``. Which domain events it hears of is decided by store position, never by how far
  the follower lags: those after ``from_position`` (the store's head when it was
  registered), except while it was disabled. ``until_position`` is the head when it was
  disabled (null while enabled): it hears of nothing stored after that. Enabling it again
  moves that pause into ``paused_ranges``, a JSON array of ``[after, until]`` pairs (it
  hears of nothing stored in ``after < position <= until``; pairs the follower has passed
  are dropped then), and sets ``until_position`` to null. Whoever disables an endpoint sets
  ``until_position`` to the store's head with ``enabled`` false (the dispatcher too, on a
  410). ``disabled_reason`` is null when its owner disabled it and ``"gone"`` when the
  dispatcher disabled it on a 410. DELETE removes the row, its secrets and its deliveries
  in one transaction.
- ``webhook_secrets``: the signing secrets (``whsec_`` + base64 of 32 random bytes, as
  Standard Webhooks spells them), ``generation`` 1, 2, ... per endpoint. The current one has
  ``expires_at`` null; a rotation sets the previous current one's ``expires_at`` to 24 hours
  later and adds the next generation. A delivery is signed with every row whose
  ``expires_at`` is null or in the future (the signatures space-separated). Kept in clear:
  an HMAC needs the key itself.
- ``notification_messages``: one row per typed message: a domain event of the store seen
  as one contract type (``Cancelled`` may be two: ``booking.cancelled`` and
  ``waitlist.left``). ``message_id`` (``msg_`` + 32 hex) is derived from the domain event's
  aggregate id, version and the type, so it is the same however often the log is read, and
  it is the ``webhook-id`` header of every attempt of every delivery of the message.
  ``payload`` is the exact request body, ``{"type", "timestamp", "data"}`` as compact JSON
  (``timestamp`` = ``occurred_at``, the domain event's time; ``data.position`` =
  ``position``, the store's notification id). A message is made only with at least one
  delivery (deleting an endpoint leaves the messages it had).
- ``notification_deliveries``: one row per message and destination: ``channel`` ``webhook``
  (``webhook_id`` set; the endpoint's url and secrets are read at each attempt, so a PATCHed
  url applies to pending deliveries) or ``email`` (``recipient`` = the address of the person
  concerned, as the store knew it when the message was made; ``webhook_id`` null).
  ``delivery_id`` is ``dlv_`` + 32 hex, derived from the message and the destination.
  ``status`` is ``pending`` (``next_attempt_at`` set: due from then on), ``delivered`` or
  ``failed`` (``next_attempt_at`` null for both). A new delivery is pending with
  ``next_attempt_at`` = ``created_at`` and ``attempts`` 0. The dispatcher records each
  attempt in ``attempts``, ``last_attempt_at``, ``last_status_code`` (null when no HTTP
  answer came) and ``last_error`` (a short reason, never a secret); ``leased_until`` is a
  dispatcher's claim on a delivery it is attempting (null when none). The API's retry sets a
  delivery ``pending`` with ``next_attempt_at`` = now. ``position`` (the message's) orders an
  endpoint's deliveries: the dispatcher delivers an endpoint's in that order, and the API
  lists them newest first.

Moments are TIMESTAMPTZ on PostgreSQL and, on SQLite, ISO-8601 UTC text with microseconds
(``moment``), which compares as text in time order. Booleans are BOOLEAN on PostgreSQL and
0/1 on SQLite.

The follower's position is the ``projection_tracking`` row named ``notifications``
(``projections.tracking``): it commits with the messages and deliveries of its batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from projections.tables import BIGINT, INTEGER, TEXT, TIMESTAMP, Column, Index, SqlType, Table

BOOLEAN = SqlType("BOOLEAN", "INTEGER")

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)
WEBHOOK, EMAIL = "webhook", "email"
# ``disabled_reason`` of an endpoint the dispatcher disabled on a 410 Gone.
GONE = "gone"

WEBHOOKS = Table(
    "webhooks",
    (
        Column("webhook_id", TEXT),
        Column("owner_id", TEXT),
        Column("url", TEXT),
        Column("event_types", TEXT),
        Column("event_id", TEXT, nullable=True),
        Column("description", TEXT, nullable=True),
        Column("enabled", BOOLEAN),
        Column("disabled_reason", TEXT, nullable=True),
        Column("from_position", BIGINT),
        Column("until_position", BIGINT, nullable=True),
        Column("paused_ranges", TEXT),
        Column("created_at", TIMESTAMP),
        Column("updated_at", TIMESTAMP),
    ),
    primary_key=("webhook_id",),
    indexes=(
        Index("webhooks_owner", ("owner_id", "created_at", "webhook_id")),
        Index("webhooks_listing", ("created_at", "webhook_id")),
    ),
)

WEBHOOK_SECRETS = Table(
    "webhook_secrets",
    (
        Column("webhook_id", TEXT),
        Column("generation", INTEGER),
        Column("secret", TEXT),
        Column("created_at", TIMESTAMP),
        Column("expires_at", TIMESTAMP, nullable=True),
    ),
    primary_key=("webhook_id", "generation"),
)

MESSAGES = Table(
    "notification_messages",
    (
        Column("message_id", TEXT),
        Column("position", BIGINT),
        Column("event_id", TEXT),
        Column("type", TEXT),
        Column("occurred_at", TIMESTAMP),
        Column("payload", TEXT),
        Column("created_at", TIMESTAMP),
    ),
    primary_key=("message_id",),
    indexes=(Index("notification_messages_position", ("position",)),),
)

DELIVERIES = Table(
    "notification_deliveries",
    (
        Column("delivery_id", TEXT),
        Column("message_id", TEXT),
        Column("position", BIGINT),
        Column("channel", TEXT),
        Column("webhook_id", TEXT, nullable=True),
        Column("recipient", TEXT, nullable=True),
        Column("status", TEXT),
        Column("attempts", INTEGER),
        Column("next_attempt_at", TIMESTAMP, nullable=True),
        Column("last_attempt_at", TIMESTAMP, nullable=True),
        Column("last_status_code", INTEGER, nullable=True),
        Column("last_error", TEXT, nullable=True),
        Column("leased_until", TIMESTAMP, nullable=True),
        Column("created_at", TIMESTAMP),
        Column("updated_at", TIMESTAMP),
    ),
    primary_key=("delivery_id",),
    indexes=(
        Index("notification_deliveries_due", ("status", "next_attempt_at")),
        Index("notification_deliveries_webhook", ("webhook_id", "position", "delivery_id")),
        Index("notification_deliveries_message", ("message_id",)),
        # The dispatcher's claim: an endpoint's pending deliveries in position order (the
        # email ones under a null webhook_id), without reading its delivered history.
        Index("notification_deliveries_lane", ("webhook_id", "status", "position")),
    ),
)

# Creation order.
NOTIFICATION_TABLES = (WEBHOOKS, WEBHOOK_SECRETS, MESSAGES, DELIVERIES)


def now() -> datetime:
    return datetime.now(UTC)


def moment(value: datetime, postgres: bool) -> Any:
    """``value`` as these tables store it: itself on PostgreSQL; on SQLite UTC ISO-8601 text
    with microseconds always written, so that two moments compare as text in time order."""
    if postgres:
        return value
    return value.astimezone(UTC).isoformat(timespec="microseconds")
