"""The read-model schema: plain tables for analysts, written only by the projection.

Tables (docs/read-models.md is the column reference, with example queries), each defined
once in ``projections.tables``:

- ``event_status``   one row per ticketed event, its counters as of ``version``;
- ``bookings``       every booking ever made, ``status`` confirmed or cancelled;
- ``waiting_list``   every waitlist entry, ``status`` waiting, promoted or left, with the
                     store order ``queue_seq`` that makes the queue FIFO;
- ``user_holdings``  one row per user and event: what the user holds there now;
- ``projection_tracking``  the last store position applied, committed with the rows
                     (``projections.tracking``).

The view ``waiting_list_positions`` gives every waiting entry its current 1-based position.
"""

from __future__ import annotations

from adapters.sql import Cursor, ReadModelDatabase
from projections import tracking
from projections.tables import READ_MODELS, Column, Table

REBUILD_SUFFIX = "_rebuild"


def create_statement(table: Table, postgres: bool, suffix: str = "") -> str:
    lines = [_column_definition(table, column, postgres) for column in table.columns]
    if len(table.primary_key) > 1:
        lines.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    body = ",\n".join(" " * 12 + line for line in lines)
    return f"CREATE TABLE IF NOT EXISTS {table.name}{suffix} (\n{body}\n        )"


def _column_definition(table: Table, column: Column, postgres: bool) -> str:
    definition = f"{column.name} {column.type.spelled(postgres)}"
    if table.primary_key == (column.name,):
        return definition + " PRIMARY KEY"
    return definition if column.nullable else definition + " NOT NULL"


def table_statements(postgres: bool, suffix: str = "") -> list[str]:
    return [create_statement(table, postgres, suffix) for table in READ_MODELS]


def index_statements(suffix: str = "", tables: tuple[Table, ...] = READ_MODELS) -> list[str]:
    """The indexes of the ``suffix`` tables, each named after its live index plus ``suffix``."""
    return [
        f"CREATE INDEX IF NOT EXISTS {index.name}{suffix} "
        f"ON {table.name}{suffix} ({', '.join(index.columns)})"
        for table in tables
        for index in table.indexes
    ]


def primary_key_index(table: str) -> str:
    """PostgreSQL's name for the index behind ``table``'s primary key, which is unnamed."""
    return f"{table}_pkey"


VIEW_STATEMENTS = [
    """CREATE VIEW waiting_list_positions AS
       SELECT waiting_list_id, event_id, user_id, quantity_waiting, joined_at,
              ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY queue_seq) AS position
       FROM waiting_list WHERE status = 'waiting'""",
]


def create_views(cursor: Cursor) -> None:
    cursor.execute("DROP VIEW IF EXISTS waiting_list_positions")
    for statement in VIEW_STATEMENTS:
        cursor.execute(statement)


def migrate(database_url: str | None = None) -> None:
    """Create the read-model tables, indexes and views if they are missing (idempotent)."""
    database = ReadModelDatabase(database_url)
    try:
        with database.transaction(immediate=True) as cursor:
            if database.is_postgres:
                # Serialise concurrent migrations (several workers starting at once).
                cursor.execute("SELECT pg_advisory_xact_lock(727401)")
            for statement in table_statements(database.is_postgres):
                cursor.execute(statement)
            tracking.create_table(cursor)
            for statement in index_statements():
                cursor.execute(statement)
            create_views(cursor)
    finally:
        database.close()
