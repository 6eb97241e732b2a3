"""Loading and writing read-model rows in bulk: the only SQL the projection writes with."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from adapters.sql import Cursor
from projections.projector import PRIMARY_KEYS, Key, Row

CHUNK = 400
UPSERT_CHUNK = 200  # rows per INSERT: 200 x 14 columns stays far below SQLite's 32,766 variables

COLUMNS: dict[str, tuple[str, ...]] = {
    "event_status": (
        "event_id",
        "name",
        "organizer_id",
        "total_tickets",
        "available_tickets",
        "booked_tickets",
        "waiting_list_count",
        "waiting_tickets",
        "max_tickets_per_user",
        "status",
        "version",
        "created_at",
        "closed_at",
        "updated_at",
    ),
    "bookings": (
        "booking_id",
        "event_id",
        "user_id",
        "quantity",
        "status",
        "source",
        "booked_at",
        "cancelled_at",
        "cancelled_by",
        "updated_at",
    ),
    "waiting_list": (
        "waiting_list_id",
        "event_id",
        "user_id",
        "quantity_requested",
        "quantity_waiting",
        "quantity_served",
        "queue_seq",
        "status",
        "joined_at",
        "first_served_at",
        "promoted_at",
        "left_at",
        "updated_at",
    ),
    "user_holdings": (
        "user_id",
        "event_id",
        "status",
        "booking_id",
        "quantity",
        "waiting_list_id",
        "waiting_quantity",
        "updated_at",
    ),
}


class RowStore:
    """Reads and upserts the read-model tables (optionally a suffixed copy, for rebuilds)."""

    def __init__(self, cursor: Cursor, suffix: str = "") -> None:
        self.cursor = cursor
        self.suffix = suffix

    def load(self, table: str, keys: list[Key]) -> dict[Key, Row]:
        # Keys in an IN list, not ``= ANY(array)``: prepared after a few runs, the array form
        # gets a generic plan that scans the whole table (PostgreSQL's CPU per projected event
        # rose from about 90 us to 250 in the on-sale).
        found: dict[Key, Row] = {}
        pk = PRIMARY_KEYS[table]
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            if len(pk) == 1:
                marks = ",".join("?" * len(chunk))
                rows = self.cursor.all(
                    f"SELECT * FROM {table}{self.suffix} WHERE {pk[0]} IN ({marks})", chunk
                )
            else:
                users = sorted({key[0] for key in chunk})
                events = sorted({key[1] for key in chunk})
                rows = self.cursor.all(
                    f"SELECT * FROM {table}{self.suffix} "
                    f"WHERE user_id IN ({','.join('?' * len(users))}) "
                    f"AND event_id IN ({','.join('?' * len(events))})",
                    [*users, *events],
                )
            for row in rows:
                key = row[pk[0]] if len(pk) == 1 else tuple(row[column] for column in pk)
                found[key] = dict(row)
        return found

    def upsert(self, table: str, rows: list[Row]) -> None:
        """Insert or update ``rows`` (distinct keys), many rows per statement: one statement
        per row cost the database and the projector twice as much CPU per event."""
        if not rows:
            return
        columns = COLUMNS[table]
        pk = PRIMARY_KEYS[table]
        names = ", ".join(columns)
        on_conflict = f"ON CONFLICT ({', '.join(pk)}) DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in columns if c not in pk
        )
        if self.cursor.postgres:
            # All rows as one JSON parameter, typed by the table's own row type: one statement
            # text for any number of rows. A VALUES list of 14 placeholders per row was a new
            # statement for each batch size, and building it took about half the projector's CPU.
            self.cursor.execute(
                f"INSERT INTO {table}{self.suffix} ({names}) SELECT {names} "
                f"FROM jsonb_populate_recordset(NULL::{table}{self.suffix}, ?::jsonb) "
                f"{on_conflict}",
                [json.dumps([{c: row[c] for c in columns} for row in rows], default=_to_text)],
            )
            return
        one_row = f"({', '.join('?' * len(columns))})"
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            self.cursor.execute(
                f"INSERT INTO {table}{self.suffix} ({names}) "
                f"VALUES {', '.join([one_row] * len(chunk))} {on_conflict}",
                [_to_text(row[column]) for row in chunk for column in columns],
            )


def _to_text(value: Any) -> Any:
    """Timestamps as ISO-8601 text, as SQLite keeps them and PostgreSQL's JSON rows carry them."""
    return value.isoformat() if isinstance(value, datetime) else value
