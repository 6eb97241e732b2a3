"""Loading and writing read-model rows in bulk: the only SQL the projection writes with.

Text is written as ``storable`` makes it: U+0000 becomes U+FFFD (the replacement
character) on both stores. PostgreSQL's text cannot hold U+0000, and new input refuses it,
but the store keeps event names that older code accepted; one such stored event must not
fail every batch that holds it (the projection would retry it forever, and the read models
would stop for every event behind it). SQLite could hold it; it stores the same text, so
that the read models answer alike on either store.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from adapters.sql import Cursor
from projections.tables import Key, Row, Table

CHUNK = 400
UPSERT_CHUNK = 200  # rows per INSERT: 200 x 14 columns stays far below SQLite's 32,766 variables
NUL = "\x00"
REPLACEMENT = "\ufffd"


class RowStore:
    """Reads and upserts the read-model tables (optionally a suffixed copy, for rebuilds)."""

    def __init__(self, cursor: Cursor, suffix: str = "") -> None:
        self.cursor = cursor
        self.suffix = suffix

    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        # Keys in an IN list, not ``= ANY(array)``: prepared after a few runs, the array form
        # gets a generic plan that scans the whole table. A composite key is matched column
        # by column; rows of key combinations nobody asked for are harmless extras.
        found: dict[Key, Row] = {}
        pk = table.primary_key
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            if len(pk) == 1:
                values = [chunk]
            else:
                values = [sorted({key[i] for key in chunk}) for i in range(len(pk))]
            where = " AND ".join(
                f"{column} IN ({','.join('?' * len(column_values))})"
                for column, column_values in zip(pk, values, strict=True)
            )
            rows = self.cursor.all(
                f"SELECT * FROM {table.name}{self.suffix} WHERE {where}",
                [value for column_values in values for value in column_values],
            )
            for row in rows:
                found[table.key(row)] = dict(row)
        return found

    def upsert(self, table: Table, rows: list[Row]) -> None:
        """Insert or update ``rows`` (distinct keys), many rows per statement: a statement per
        row multiplies the round trips and the database's work per event."""
        if not rows:
            return
        columns = table.column_names
        pk = table.primary_key
        name = table.name + self.suffix
        names = ", ".join(columns)
        on_conflict = f"ON CONFLICT ({', '.join(pk)}) DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in columns if c not in pk
        )
        if self.cursor.postgres:
            # All rows as one JSON parameter, typed by the table's own row type: one statement
            # text for any number of rows. A VALUES list of placeholders per row is a new
            # statement for each batch size, and building it dominated the projector's CPU.
            payload = json.dumps([{c: row[c] for c in columns} for row in rows], default=_to_text)
            if "\\u0000" in payload:  # JSON's spelling of U+0000 (or a harmless look-alike)
                payload = json.dumps(
                    [{c: storable(row[c]) for c in columns} for row in rows], default=_to_text
                )
            self.cursor.execute(
                f"INSERT INTO {name} ({names}) SELECT {names} "
                f"FROM jsonb_populate_recordset(NULL::{name}, ?::jsonb) {on_conflict}",
                [payload],
            )
            return
        one_row = f"({', '.join('?' * len(columns))})"
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            self.cursor.execute(
                f"INSERT INTO {name} ({names}) "
                f"VALUES {', '.join([one_row] * len(chunk))} {on_conflict}",
                [storable(_to_text(row[column])) for row in chunk for column in columns],
            )


def storable(value: Any) -> Any:
    """``value`` as the read models store it: text without U+0000 (see the module's doc)."""
    if isinstance(value, str) and NUL in value:
        return value.replace(NUL, REPLACEMENT)
    return value


def _to_text(value: Any) -> Any:
    """Timestamps as ISO-8601 text, as SQLite keeps them and PostgreSQL's JSON rows carry them."""
    return value.isoformat() if isinstance(value, datetime) else value
