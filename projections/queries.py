"""What the API reads: small functions over the read-model tables, returning rows named as
stored (``api.presenters`` turns them into the contract's documents)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters.log_reader import StoreLog
from adapters.sql import Cursor, ReadModelDatabase
from projections import tracking
from projections.runner import Lag, measure_lag
from projections.tables import Row

# A holding's statuses while it holds something: seats, a queue entry, or an entry on offer.
ACTIVE = ("confirmed", "waitlisted", "offered")
ACTIVE_LIST = ", ".join("?" * len(ACTIVE))
FOREIGN_CURSOR = "cursor is not one this service issued"
MAX_CURSOR_INTEGER = 2**63 - 1


class InvalidCursor(ValueError):
    """A paging cursor that this service did not issue."""


def iso(value: Any) -> str | None:
    """A moment as ISO-8601 text: PostgreSQL returns datetimes, SQLite keeps the text."""
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


class ReadModel:
    """Queries over the read models; one instance per process, thread-safe.

    ``log`` is the store's, for measuring how far the read models trail it.
    """

    def __init__(self, database_url: str | None = None, log: StoreLog | None = None) -> None:
        self.database = ReadModelDatabase(database_url)
        self.log = log

    def close(self) -> None:
        self.database.close()

    def check(self) -> None:
        tracking.position(self.database, tracking.LIVE)

    def lag(self) -> Lag:
        if self.log is None:
            raise RuntimeError("this ReadModel was opened without the store's log")
        return measure_lag(self.log, self.database)

    def _moment(self, text: str) -> Any:
        """A cursor's moment as the store compares it: a datetime on PostgreSQL, the stored
        ISO-8601 text on SQLite."""
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidCursor(FOREIGN_CURSOR) from None
        return parsed if self.database.is_postgres else text

    # ---------------------------------------------------------------- events
    def event_status(self, event_id: str) -> Row | None:
        rows = self.database.query("SELECT * FROM event_status WHERE event_id = ?", [event_id])
        return rows[0] if rows else None

    def list_events(self, limit: int, cursor: str | None) -> tuple[list[Row], str | None]:
        params: list[Any] = []
        where = ""
        if cursor:
            created_at, event_id = decode_cursor(cursor, str, str)
            where = "WHERE (created_at > ? OR (created_at = ? AND event_id > ?))"
            at = self._moment(created_at)
            params = [at, at, event_id]
        rows = self.database.query(
            f"SELECT * FROM event_status {where} ORDER BY created_at, event_id LIMIT ?",
            [*params, limit + 1],
        )
        return _page(rows, limit, lambda r: (iso(r["created_at"]), r["event_id"]))

    # -------------------------------------------------------- queue/bookings
    def waitlist(self, event_id: str, limit: int, cursor: str | None) -> tuple[list, str | None]:
        """The waiting entries in queue order, each with its 1-based ``position`` and its open
        offer's ``offer_id``, ``offer_quantity`` and ``expires_at`` (None without one)."""
        after = decode_cursor(cursor, int)[0] if cursor else -1

        def page(tx: Cursor) -> tuple[list[Row], int]:
            # An entry has at most one open offer: the join adds its columns, never a row.
            rows = tx.all(
                "SELECT w.*, o.offer_id, o.quantity AS offer_quantity, o.expires_at "
                "FROM waiting_list w LEFT JOIN offers o ON o.event_id = w.event_id "
                "AND o.status = 'open' AND o.waiting_list_id = w.waiting_list_id "
                "WHERE w.event_id = ? AND w.status = 'waiting' "
                "AND w.queue_seq > ? ORDER BY w.queue_seq LIMIT ?",
                [event_id, after, limit + 1],
            )
            return rows, _position(tx, event_id, rows[0]["queue_seq"]) if rows else 0

        rows, first = self.database.read(page)
        for index, row in enumerate(rows):
            row["position"] = first + index
        return _page(rows, limit, lambda r: (r["queue_seq"],))

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
        return _page(rows, limit, lambda r: (r["booking_id"],))

    def booking_status(self, event_id: str, user_id: str) -> Row | None:
        """The user's ``user_holdings`` row at the event (with its waiting entry's
        ``position``), or None if they never held anything there. Its ``offer_id``,
        ``offer_quantity`` and ``expires_at`` name the entry's open offer (None without one);
        ``status`` is ``offered`` while that entry is all the user holds there."""

        def holding(tx: Cursor) -> Row | None:
            row = tx.one(
                "SELECT * FROM user_holdings WHERE event_id = ? AND user_id = ?",
                [event_id, user_id],
            )
            return _with_position(tx, row) if row is not None else None

        return self.database.read(holding)

    def user_holdings(
        self, user_id: str, limit: int = 500, cursor: str | None = None
    ) -> tuple[list[Row], str | None]:
        """The user's active holdings, one per event, in event-id order (stable paging), each
        with its event's ``event_name`` and its waiting entry's ``position``."""
        after = decode_cursor(cursor, str)[0] if cursor else ""

        def holdings(tx: Cursor) -> list[Row]:
            rows = tx.all(
                "SELECT h.*, e.name AS event_name FROM user_holdings h "
                "JOIN event_status e ON e.event_id = h.event_id "
                f"WHERE h.user_id = ? AND h.status IN ({ACTIVE_LIST}) AND h.event_id > ? "
                "ORDER BY h.event_id LIMIT ?",
                [user_id, *ACTIVE, after, limit + 1],
            )
            return [_with_position(tx, row) for row in rows]

        return _page(self.database.read(holdings), limit, lambda r: (r["event_id"],))

    def user_offers(
        self, user_id: str, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Row], str | None]:
        """The user's open offers, the soonest due first (then by offer id), each with its
        event's ``event_name``."""
        params: list[Any] = [user_id]
        where = ""
        if cursor:
            expires_at, offer_id = decode_cursor(cursor, str, str)
            where = "AND (o.expires_at > ? OR (o.expires_at = ? AND o.offer_id > ?))"
            at = self._moment(expires_at)
            params += [at, at, offer_id]
        rows = self.database.query(
            "SELECT o.offer_id, o.event_id, e.name AS event_name, o.waiting_list_id, "
            "o.quantity, o.expires_at FROM offers o "
            "JOIN event_status e ON e.event_id = o.event_id "
            f"WHERE o.user_id = ? AND o.status = 'open' {where} "
            "ORDER BY o.expires_at, o.offer_id LIMIT ?",
            [*params, limit + 1],
        )
        return _page(rows, limit, lambda r: (iso(r["expires_at"]), r["offer_id"]))

    def held_event_ids(self, user_id: str) -> list[str]:
        rows = self.database.query(
            f"SELECT event_id FROM user_holdings WHERE user_id = ? AND status IN ({ACTIVE_LIST})",
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


def _with_position(tx: Cursor, holding: Row) -> Row:
    """``holding`` with its waiting entry's place in the queue (None while it waits for none)."""
    holding["position"] = None
    if holding["waiting_list_id"]:
        entry = tx.one(
            "SELECT queue_seq FROM waiting_list WHERE waiting_list_id = ?",
            [holding["waiting_list_id"]],
        )
        if entry:
            holding["position"] = _position(tx, holding["event_id"], entry["queue_seq"])
    return holding


def _page(rows: list[Row], limit: int, key: Callable[[Row], tuple]) -> tuple[list, str | None]:
    """The first ``limit`` of ``rows`` (one more was fetched to tell whether a page follows),
    and the cursor of the next page."""
    next_cursor = encode_cursor(*key(rows[limit - 1])) if len(rows) > limit else None
    return rows[:limit], next_cursor
