"""The dispatcher's SQL: which destinations have deliveries due, claiming an endpoint's due
deliveries under a lease, and recording each attempt (``projections.notifications.tables``
describes the columns).

A claim sets ``leased_until`` on the deliveries it takes; no other claim takes a delivery
whose lease is still running, so two dispatchers never attempt one delivery at once. On
PostgreSQL the claim reads with ``FOR UPDATE SKIP LOCKED`` (two dispatchers claiming at the
same moment take different rows instead of queueing); on SQLite the claim's immediate
transaction holds the file's one write lock, so claims are serialised. The lease's moment is
also the claim's token: an attempt is recorded only where ``leased_until`` still holds it,
so a dispatcher whose lease ran out (and whose deliveries another one claimed) cannot
overwrite what that one recorded.

A lane is delivered by one claim at a time: while the first of its pending deliveries are
leased, by another dispatcher or by one that died, it is not claimed (until that lease
ends), so an endpoint's messages keep their order across a crash. Two dispatchers claiming
one lane at the same instant may still both take some (different deliveries, in parallel).

Deliveries of a disabled endpoint (by its owner, or on a 410 ``Gone``) are not claimed:
they stay pending, held until the endpoint is enabled again, and then go to its URL of that
moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapters.sql import Cursor
from projections.notifications.subscriptions import signing_secrets
from projections.notifications.tables import (
    DELIVERED,
    EMAIL,
    FAILED,
    GONE,
    PENDING,
    moment,
)

# Standard Webhooks' schedule (API.md): the delay after the 1st, 2nd, ... failed attempt.
# After the 12th attempt, 2.8 days after the first, a delivery is failed.
RETRY_DELAYS: tuple[float, ...] = (5, 300, 1800, 7200, 18000) + (36000,) * 6
# ``last_error`` holds a short reason; a receiver's words are cut to this.
ERROR_LENGTH = 200


@dataclass(frozen=True)
class Lane:
    """Where deliveries go one after another: an endpoint (``webhook_id``) or, with
    ``webhook_id`` None, the mail server."""

    webhook_id: str | None

    @property
    def is_email(self) -> bool:
        return self.webhook_id is None


EMAIL_LANE = Lane(None)


@dataclass(frozen=True)
class Claimed:
    """A delivery in hand, with what its attempt sends."""

    delivery_id: str
    message_id: str
    type: str
    position: int
    payload: str
    attempts: int
    recipient: str | None


@dataclass(frozen=True)
class Claim:
    """A lane's deliveries claimed together, in position order, and where they go: the
    endpoint's url and signing secrets as they are now (none for the mail lane)."""

    lane: Lane
    token: Any  # the lease's moment as stored: what ``record`` matches
    leased_until: datetime
    deliveries: tuple[Claimed, ...]
    url: str | None = None
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. ``status_code`` is the receiver's (HTTP, or SMTP's reply
    code); ``error`` a short reason when it failed; ``gone`` a 410; ``final`` a failure that
    no retry can mend."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    gone: bool = False
    final: bool = False


def due_lanes(cursor: Cursor, at: datetime, mail: bool, limit: int) -> list[Lane]:
    """Lanes with a delivery due and unclaimed at ``at``, the one waiting longest first:
    enabled endpoints, and the mail server's when ``mail``."""
    stamp = moment(at, cursor.postgres)
    rows = cursor.all(
        "SELECT due.webhook_id FROM ("
        "  SELECT webhook_id, MIN(position) AS first FROM notification_deliveries"
        "  WHERE status = ? AND next_attempt_at <= ?"
        "  AND (leased_until IS NULL OR leased_until <= ?)"
        "  GROUP BY webhook_id"
        ") due LEFT JOIN webhooks w ON w.webhook_id = due.webhook_id "
        "WHERE (due.webhook_id IS NULL AND ?) OR w.enabled = ? "
        "ORDER BY due.first LIMIT ?",
        [PENDING, stamp, stamp, mail, True, limit],
    )
    return [Lane(row["webhook_id"]) for row in rows]


def claim(cursor: Cursor, lane: Lane, at: datetime, lease: timedelta, limit: int) -> Claim | None:
    """Inside the caller's (immediate) transaction: lease up to ``limit`` of ``lane``'s due
    deliveries, lowest position first; None when it has none (or its endpoint is gone or
    disabled meanwhile)."""
    postgres = cursor.postgres
    stamp = moment(at, postgres)
    url: str | None = None
    secrets: tuple[str, ...] = ()
    if not lane.is_email:
        endpoint = cursor.one(
            "SELECT url, enabled FROM webhooks WHERE webhook_id = ?", [lane.webhook_id]
        )
        if endpoint is None or not endpoint["enabled"]:
            return None
        url = endpoint["url"]
        secrets = tuple(signing_secrets(cursor, lane.webhook_id, at))
    where = "webhook_id IS NULL AND channel = ?" if lane.is_email else "webhook_id = ?"
    lane_param = EMAIL if lane.is_email else lane.webhook_id
    # A lane whose first pending deliveries are leased is being delivered elsewhere (or was,
    # by a dispatcher that died): claiming those behind them would overtake them.
    first = cursor.all(
        f"SELECT leased_until FROM notification_deliveries WHERE {where} AND status = ? "
        "ORDER BY position, delivery_id LIMIT ?",
        [lane_param, PENDING, limit],
    )
    if any(row["leased_until"] is not None and row["leased_until"] > stamp for row in first):
        return None
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    rows = cursor.all(
        f"SELECT delivery_id FROM notification_deliveries WHERE {where} AND status = ? "
        "AND next_attempt_at <= ? AND (leased_until IS NULL OR leased_until <= ?) "
        f"ORDER BY position, delivery_id LIMIT ?{lock}",
        [lane_param, PENDING, stamp, stamp, limit],
    )
    if not rows:
        return None
    ids = [row["delivery_id"] for row in rows]
    leased_until = at + lease
    token = moment(leased_until, postgres)
    marks = ", ".join("?" * len(ids))
    cursor.execute(
        f"UPDATE notification_deliveries SET leased_until = ? WHERE delivery_id IN ({marks})",
        [token, *ids],
    )
    found = cursor.all(
        "SELECT d.delivery_id, d.message_id, d.position, d.attempts, d.recipient, m.type, "
        "m.payload FROM notification_deliveries d "
        "JOIN notification_messages m ON m.message_id = d.message_id "
        f"WHERE d.delivery_id IN ({marks}) ORDER BY d.position, d.delivery_id",
        ids,
    )
    deliveries = tuple(
        Claimed(
            delivery_id=row["delivery_id"],
            message_id=row["message_id"],
            type=row["type"],
            position=int(row["position"]),
            payload=row["payload"],
            attempts=int(row["attempts"]),
            recipient=row["recipient"],
        )
        for row in found
    )
    return Claim(lane, token, leased_until, deliveries, url, secrets)


def record(
    cursor: Cursor,
    claim: Claim,
    attempts: Sequence[tuple[Claimed, Outcome, datetime]],
    retry_delays: Sequence[float],
    head: int | None = None,
) -> int:
    """Inside the caller's transaction: each attempt's outcome, made at its moment, on the
    deliveries this claim still holds; returns how many it held. A delivered attempt ends
    the delivery; a failed one schedules the next on ``retry_delays`` (counted by the
    delivery's attempts) or, past its end, fails it. A 410 also disables the endpoint at
    once (``head``: the store's position then, where it stops hearing of events)."""
    postgres = cursor.postgres
    held = 0
    for delivery, outcome, at in attempts:
        attempts_made = delivery.attempts + 1
        stamp = moment(at, postgres)
        if outcome.delivered:
            status, next_at = DELIVERED, None
        else:
            delay = None if outcome.final else _delay(retry_delays, attempts_made)
            status = FAILED if delay is None else PENDING
            next_at = None if delay is None else moment(at + timedelta(seconds=delay), postgres)
        held += cursor.execute(
            "UPDATE notification_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
            "last_attempt_at = ?, last_status_code = ?, last_error = ?, leased_until = NULL, "
            "updated_at = ? WHERE delivery_id = ? AND leased_until = ?",
            [
                status,
                attempts_made,
                next_at,
                stamp,
                outcome.status_code,
                _short(outcome.error),
                stamp,
                delivery.delivery_id,
                claim.token,
            ],
        )
        if outcome.gone and claim.lane.webhook_id is not None:
            disable_gone(cursor, claim.lane.webhook_id, at, head)
    return held


def release(cursor: Cursor, claim: Claim, deliveries: Sequence[Claimed]) -> None:
    """Give back deliveries claimed but not attempted: claimable again at once."""
    if not deliveries:
        return
    ids = [delivery.delivery_id for delivery in deliveries]
    cursor.execute(
        "UPDATE notification_deliveries SET leased_until = NULL "
        f"WHERE delivery_id IN ({', '.join('?' * len(ids))}) AND leased_until = ?",
        [*ids, claim.token],
    )


def disable_gone(cursor: Cursor, webhook_id: str, at: datetime, head: int | None) -> None:
    """The endpoint answered 410 Gone: disabled now, as its owner would disable it."""
    stamp = moment(at, cursor.postgres)
    cursor.execute(
        "UPDATE webhooks SET enabled = ?, disabled_reason = ?, until_position = ?, "
        "updated_at = ? WHERE webhook_id = ? AND enabled = ?",
        [False, GONE, head, stamp, webhook_id, True],
    )


def _delay(retry_delays: Sequence[float], attempts_made: int) -> float | None:
    """The wait after the ``attempts_made``-th attempt failed; None when none is left."""
    return retry_delays[attempts_made - 1] if attempts_made <= len(retry_delays) else None


def _short(error: str | None) -> str | None:
    if error is None:
        return None
    return error if len(error) <= ERROR_LENGTH else error[: ERROR_LENGTH - 1] + "…"
