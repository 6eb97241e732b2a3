"""Check the read models against a fresh replay of an event's stored history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.log_reader import StoreLog
from adapters.sql import Cursor
from domain.errors import EventNotFound
from domain.event import Event
from projections.queries import ACTIVE, ACTIVE_LIST, ReadModel
from projections.replay import replay, status_row, stored_until
from projections.row_store import storable
from projections.tables import EVENT_STATUS, TIMESTAMP, Row

# What a replay can be held to: every column but the key it was found by and the moments,
# which are the projection's own.
COMPARED_STATUS = tuple(
    column.name
    for column in EVENT_STATUS.columns
    if column.name not in EVENT_STATUS.primary_key and column.type is not TIMESTAMP
)


def verify(log: StoreLog, read_model: ReadModel, event_id: str) -> dict[str, Any]:
    """Compare the read models with a replay *at the version they reflect*, so that writes
    landing meanwhile (the projection trails the store) are not reported as differences."""
    differences: list[dict[str, Any]] = []

    def differ(table: str, key: str, field: str, expected: Any, actual: Any) -> None:
        expected = storable(expected)  # the replay's text as the read models store it
        if expected != actual:
            differences.append(
                {"table": table, "key": key, "field": field, "expected": expected, "actual": actual}
            )

    def load(tx: Cursor) -> tuple[Any, list, list, list, list]:
        if tx.postgres:  # one snapshot for all the reads, as one projection batch left them
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        status = tx.one("SELECT * FROM event_status WHERE event_id = ?", [event_id])
        bookings = tx.all(
            "SELECT booking_id, user_id, quantity FROM bookings "
            "WHERE event_id = ? AND status = 'confirmed'",
            [event_id],
        )
        waiting = tx.all(
            "SELECT waiting_list_id, user_id, quantity_waiting FROM waiting_list "
            "WHERE event_id = ? AND status = 'waiting' ORDER BY queue_seq",
            [event_id],
        )
        holdings = tx.all(
            "SELECT user_id, booking_id, waiting_list_id, offer_id, status FROM user_holdings "
            f"WHERE event_id = ? AND status IN ({ACTIVE_LIST})",
            [event_id, *ACTIVE],
        )
        offers = tx.all(
            "SELECT offer_id, status, user_id, waiting_list_id, quantity, expires_at "
            "FROM offers WHERE event_id = ?",
            [event_id],
        )
        return status, bookings, waiting, holdings, offers

    status, bookings, waiting, holdings, offers = read_model.database.read(load)
    version = status["version"] if status else None
    event = replay(stored_until(log, event_id, version))
    if event is None:
        raise EventNotFound("No such event.")
    if status is None:
        differ("event_status", event_id, "row", "present", None)
    else:
        expected_status = status_row(event)
        for field in COMPARED_STATUS:
            differ("event_status", event_id, field, expected_status[field], status[field])

    actual_bookings = {row["booking_id"]: [row["user_id"], row["quantity"]] for row in bookings}
    for booking_id in sorted(set(event.bookings) | set(actual_bookings)):
        differ(
            "bookings",
            booking_id,
            "userId,quantity",
            event.bookings.get(booking_id),
            actual_bookings.get(booking_id),
        )

    expected_queue = [[wl_id, user, quantity] for wl_id, (user, quantity) in event.waitlist.items()]
    actual_queue = [
        [row["waiting_list_id"], row["user_id"], row["quantity_waiting"]] for row in waiting
    ]
    differ("waiting_list", event_id, "queue", expected_queue, actual_queue)

    expected_holders = {
        user_id: _holding(booking_id, waiting_list_id, event.offered_entries.get(waiting_list_id))
        for user_id, (booking_id, waiting_list_id) in event.holders.items()
    }
    actual_holders = {
        row["user_id"]: [row["booking_id"], row["waiting_list_id"], row["offer_id"], row["status"]]
        for row in holdings
    }
    for user_id in sorted(set(expected_holders) | set(actual_holders)):
        differ(
            "user_holdings",
            user_id,
            "bookingId,waitingListId,offerId,status",
            expected_holders.get(user_id),
            actual_holders.get(user_id),
        )

    expected_offers: dict[str, list[Any]] = {
        offer_id: [outcome] for offer_id, outcome in event.offer_outcomes.items()
    }
    for offer_id, (user_id, waiting_list_id, quantity, expires_at) in event.offers.items():
        expected_offers[offer_id] = ["open", user_id, waiting_list_id, quantity, utc(expires_at)]
    actual_offers = {row["offer_id"]: _offer(row) for row in offers}
    for offer_id in sorted(set(expected_offers) | set(actual_offers)):
        differ(
            "offers",
            offer_id,
            "status (and userId,waitingListId,quantity,expiresAt while open)",
            expected_offers.get(offer_id),
            actual_offers.get(offer_id),
        )
    return {"eventId": event_id, "consistent": not differences, "differences": differences}


def _holding(booking_id: str | None, waiting_list_id: str | None, offer_id: str | None) -> list:
    """A holding as the projection writes it: its ids, and the status they make."""
    status = "confirmed" if booking_id else "offered" if offer_id else "waitlisted"
    return [booking_id, waiting_list_id, offer_id, status]


def _offer(row: Row) -> list[Any]:
    """An ``offers`` row as a replay can hold it to: a settled offer by its outcome alone
    (the replayed aggregate keeps no more of it), an open one whole."""
    if row["status"] != "open":
        return [row["status"]]
    return ["open", row["user_id"], row["waiting_list_id"], row["quantity"], utc(row["expires_at"])]


def utc(moment: Any) -> str:
    """A moment, stored (a datetime, or ISO-8601 text) or replayed (ISO-8601 text), as UTC
    ISO-8601 text: the same instant compares equal from either store."""
    if not isinstance(moment, datetime):
        moment = datetime.fromisoformat(str(moment))
    return moment.astimezone(UTC).isoformat()


def all_event_ids(log: StoreLog) -> list[str]:
    """Every ticketed event in the store, found by its creation event."""
    topic = Event.TOPIC + ".EventInitialized"
    event_ids: list[str] = []
    start = 1
    while True:
        page = log.recorder.select_notifications(start, 1000, topics=[topic])
        if not page:
            return event_ids
        event_ids.extend(str(notification.originator_id) for notification in page)
        start = page[-1].id + 1
