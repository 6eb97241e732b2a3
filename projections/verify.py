"""Check the read models against a fresh replay of an event's stored history."""

from __future__ import annotations

from typing import Any

from adapters.log_reader import StoreLog
from adapters.sql import Cursor
from domain.errors import EventNotFound
from domain.event import Event
from projections.queries import ReadModel
from projections.replay import replay, status_row, stored_until
from projections.row_store import storable
from projections.tables import EVENT_STATUS, TIMESTAMP

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

    def load(tx: Cursor) -> tuple[Any, list, list, list]:
        if tx.postgres:  # one snapshot for all four reads, as one projection batch left them
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
            "SELECT user_id, booking_id, waiting_list_id FROM user_holdings "
            "WHERE event_id = ? AND status IN ('confirmed', 'waitlisted')",
            [event_id],
        )
        return status, bookings, waiting, holdings

    status, bookings, waiting, holdings = read_model.database.read(load)
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

    actual_holders = {
        row["user_id"]: [row["booking_id"], row["waiting_list_id"]] for row in holdings
    }
    for user_id in sorted(set(event.holders) | set(actual_holders)):
        differ(
            "user_holdings",
            user_id,
            "bookingId,waitingListId",
            event.holders.get(user_id),
            actual_holders.get(user_id),
        )
    return {"eventId": event_id, "consistent": not differences, "differences": differences}


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
