"""How far notifications trail: the outbox follower behind the store's log, and deliveries
still waiting. Measured from the tables (so every API worker answers alike, wherever the
follower and the dispatcher run), for ``/metrics``, ``/health`` and ``ticketing dispatch
--status``.

Pending deliveries are counted while they can go out: those of an endpoint disabled by
its owner or by a 410 are held, counted apart, and do not age the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.log_reader import StoreLog
from adapters.sql import ReadModelDatabase
from projections.notifications.schema import TRACKING_NAME
from projections.notifications.tables import DELIVERY_STATUSES, PENDING
from projections.runner import Lag, measure_lag


@dataclass(frozen=True)
class Backlog:
    outbox: Lag  # the follower's position against the store's head
    pending_messages: int  # messages with a delivery that can still go out
    pending_deliveries: int
    held_deliveries: int  # pending, of a disabled endpoint
    oldest_pending_seconds: float  # since the oldest pending delivery was made (0: none)
    # How long the most overdue delivery that can go out has waited past its due time: it
    # grows while no dispatcher works, not while a receiver is down (a failed attempt is
    # due again only after its retry delay), so it is the dispatcher's health.
    overdue_seconds: float
    deliveries: dict[str, int]  # by status: pending, delivered, failed


def outbox_lag(log: StoreLog, database: ReadModelDatabase) -> Lag:
    return measure_lag(log, database, TRACKING_NAME)


def measure_backlog(log: StoreLog, database: ReadModelDatabase) -> Backlog:
    by_status = {status: 0 for status in DELIVERY_STATUSES}
    for row in database.query(
        "SELECT status, COUNT(*) AS n FROM notification_deliveries GROUP BY status"
    ):
        by_status[row["status"]] = int(row["n"])
    live = database.query(
        "SELECT COUNT(DISTINCT d.message_id) AS messages, COUNT(*) AS deliveries, "
        "MIN(d.created_at) AS oldest, MIN(d.next_attempt_at) AS due "
        "FROM notification_deliveries d "
        "LEFT JOIN webhooks w ON w.webhook_id = d.webhook_id "
        "WHERE d.status = ? AND (d.webhook_id IS NULL OR w.enabled = ?)",
        [PENDING, True],
    )[0]
    return Backlog(
        outbox=outbox_lag(log, database),
        pending_messages=int(live["messages"] or 0),
        pending_deliveries=int(live["deliveries"] or 0),
        held_deliveries=by_status[PENDING] - int(live["deliveries"] or 0),
        oldest_pending_seconds=_age(live["oldest"]),
        overdue_seconds=_age(live["due"]),
        deliveries=by_status,
    )


def _age(oldest: Any) -> float:
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    return max(0.0, (datetime.now(UTC) - oldest).total_seconds())
