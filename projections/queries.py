"""What the API reads: small functions over the read-model tables, returning JSON-ready dicts."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from adapters.sql import Cursor, ReadModelDatabase
from projections.runner import LIVE, Lag, measure_lag
from projections.schema import TRACKING_TABLE

ACTIVE = ("confirmed", "waitlisted")
FOREIGN_CURSOR = "cursor is not one this service issued"
MAX_CURSOR_INTEGER = 2**63 - 1


class InvalidCursor(ValueError):
    """A paging cursor that this service did not issue."""


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The values a cursor carries: exactly as many as ``types``, each of its type, integers
    within the columns' 64 bits and strings of printable ASCII (what ids and timestamps are
    made of), in the very spelling ``encode_cursor`` gives them. Anything else reaching a
    query could only make the store's driver fail (a 500)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError):
        raise InvalidCursor(FOREIGN_CURSOR) from None
    if (
        not isinstance(values, list)
        or len(values) != len(types)
        or not all(_fits(value, kind) for value, kind in zip(values, types, strict=True))
        or encode_cursor(*values) != cursor
    ):
        raise InvalidCursor(FOREIGN_CURSOR)
    return values


def _fits(value: Any, kind: type) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    if isinstance(value, int):
        return 0 <= value <= MAX_CURSOR_INTEGER
    if isinstance(value, str):
        return value.isascii() and value.isprintable()
    return False


def status_of(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": row["event_id"],
        "name": row["name"],
        "totalTickets": row["total_tickets"],
        "availableTickets": row["available_tickets"],
        "bookedTickets": row["booked_tickets"],
        "waitingListCount": row["waiting_list_count"],
        "status": row["status"],
        "version": row["version"],
        "maxTicketsPerUser": row["max_tickets_per_user"],
        "organizerId": row["organizer_id"],
        "createdAt": iso(row["created_at"]),
    }


class ReadModel:
    """Queries over the read models; one instance per process, thread-safe."""

    def __init__(self, database_url: str | None = None, service: Any = None) -> None:
        self.database = ReadModelDatabase(database_url)
        self.service = service

    def close(self) -> None:
        self.database.close()

    def check(self) -> None:
        self.database.query(f"SELECT position FROM {TRACKING_TABLE} WHERE name = ?", [LIVE])

    def lag(self) -> Lag:
        return measure_lag(self.service, self.database)

    # ---------------------------------------------------------------- events
    def event_status(self, event_id: str) -> dict[str, Any] | None:
        rows = self.database.query("SELECT * FROM event_status WHERE event_id = ?", [event_id])
        return status_of(rows[0]) if rows else None

    def list_events(self, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        params: list[Any] = []
        where = ""
        if cursor:
            created_at, event_id = decode_cursor(cursor, str, str)
            where = "WHERE (created_at > ? OR (created_at = ? AND event_id > ?))"
            try:
                parsed = datetime.fromisoformat(created_at)
            except ValueError:
                raise InvalidCursor(FOREIGN_CURSOR) from None
            at = parsed if self.database.is_postgres else created_at
            params = [at, at, event_id]
        rows = self.database.query(
            f"SELECT * FROM event_status {where} ORDER BY created_at, event_id LIMIT ?",
            [*params, limit + 1],
        )
        return _page(rows, limit, status_of, lambda r: (iso(r["created_at"]), r["event_id"]))

    # -------------------------------------------------------- queue/bookings
    def waitlist(self, event_id: str, limit: int, cursor: str | None) -> tuple[list, str | None]:
        after = decode_cursor(cursor, int)[0] if cursor else -1

        def page(tx: Cursor) -> tuple[list[dict], int]:
            rows = tx.all(
                "SELECT * FROM waiting_list WHERE event_id = ? AND status = 'waiting' "
                "AND queue_seq > ? ORDER BY queue_seq LIMIT ?",
                [event_id, after, limit + 1],
            )
            return rows, _position(tx, event_id, rows[0]["queue_seq"]) if rows else 0

        rows, first = self.database.read(page)
        items = [
            {
                "waitingListId": row["waiting_list_id"],
                "userId": row["user_id"],
                "quantity": row["quantity_waiting"],
                "position": first + index,
                "joinedAt": iso(row["joined_at"]),
            }
            for index, row in enumerate(rows[:limit])
        ]
        next_cursor = encode_cursor(rows[limit - 1]["queue_seq"]) if len(rows) > limit else None
        return items, next_cursor

    def bookings(self, event_id: str, limit: int, cursor: str | None) -> tuple[list, str | None]:
        params: list[Any] = [event_id]
        where = ""
        if cursor:
            where = "AND booking_id > ?"
            params.append(decode_cursor(cursor, str)[0])
        rows = self.database.query(
            f"SELECT * FROM bookings WHERE event_id = ? AND status = 'confirmed' {where} "
            "ORDER BY booking_id LIMIT ?",
            [*params, limit + 1],
        )

        def render(row: dict[str, Any]) -> dict[str, Any]:
            return {
                "bookingId": row["booking_id"],
                "userId": row["user_id"],
                "quantity": row["quantity"],
                "bookedAt": iso(row["booked_at"]),
            }

        return _page(rows, limit, render, lambda r: (r["booking_id"],))

    def booking_status(self, event_id: str, user_id: str) -> dict[str, Any]:
        def status(tx: Cursor) -> dict[str, Any]:
            row = tx.one(
                "SELECT * FROM user_holdings WHERE event_id = ? AND user_id = ?",
                [event_id, user_id],
            )
            answer = {"eventId": event_id, "userId": user_id, "status": "none"}
            if row is not None:
                answer.update(_holding_fields(tx, row))
            return answer

        return self.database.read(status)

    def user_holdings(
        self, user_id: str, limit: int = 500, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The user's active holdings, one per event, in event-id order (stable paging)."""
        after = decode_cursor(cursor, str)[0] if cursor else ""

        def holdings(tx: Cursor) -> list[dict[str, Any]]:
            rows = tx.all(
                "SELECT h.*, e.name AS event_name FROM user_holdings h "
                "JOIN event_status e ON e.event_id = h.event_id "
                "WHERE h.user_id = ? AND h.status IN (?, ?) AND h.event_id > ? "
                "ORDER BY h.event_id LIMIT ?",
                [user_id, *ACTIVE, after, limit + 1],
            )
            return [
                {"eventId": row["event_id"], "eventName": row["event_name"]}
                | _holding_fields(tx, row)
                for row in rows
            ]

        items = self.database.read(holdings)
        next_cursor = encode_cursor(items[limit - 1]["eventId"]) if len(items) > limit else None
        return items[:limit], next_cursor

    def held_event_ids(self, user_id: str) -> list[str]:
        rows = self.database.query(
            "SELECT event_id FROM user_holdings WHERE user_id = ? AND status IN (?, ?)",
            [user_id, *ACTIVE],
        )
        return [row["event_id"] for row in rows]


def _position(tx: Cursor, event_id: str, queue_seq: int) -> int:
    row = tx.one(
        "SELECT COUNT(*) AS ahead FROM waiting_list "
        "WHERE event_id = ? AND status = 'waiting' AND queue_seq <= ?",
        [event_id, queue_seq],
    )
    return int(row["ahead"]) if row else 0


def _holding_fields(tx: Cursor, row: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": row["status"]}
    if row["booking_id"]:
        fields.update(bookingId=row["booking_id"], quantity=row["quantity"])
    if row["waiting_list_id"]:
        entry = tx.one(
            "SELECT queue_seq FROM waiting_list WHERE waiting_list_id = ?", [row["waiting_list_id"]]
        )
        fields.update(
            waitingListId=row["waiting_list_id"],
            waitingQuantity=row["waiting_quantity"],
            position=_position(tx, row["event_id"], entry["queue_seq"]) if entry else None,
        )
    return fields


def _page(rows: list[dict], limit: int, render: Any, key: Any) -> tuple[list, str | None]:
    items = [render(row) for row in rows[:limit]]
    next_cursor = encode_cursor(*key(rows[limit - 1])) if len(rows) > limit else None
    return items, next_cursor
