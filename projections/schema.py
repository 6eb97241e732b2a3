"""The read-model schema: plain tables for analysts, written only by the projection.

Tables (docs/read-models.md is the column reference, with example queries), each defined
once in ``projections.tables``:

- ``event_status``   one row per ticketed event, its counters as of ``version``;
- ``bookings``       every booking ever made, ``status`` confirmed or cancelled;
- ``waiting_list``   every waitlist entry, ``status`` waiting, promoted, left, declined or
                     expired, with the store order ``queue_seq`` that makes the queue FIFO;
- ``user_holdings``  one row per user and event: what the user holds there now;
- ``offers``         every offer of held seats made to a queue's head, open or settled;
- ``projection_tracking``  the last store position applied, committed with the rows
                     (``projections.tracking``).

The view ``waiting_list_positions`` gives every waiting entry its current 1-based position.

``migrate`` also upgrades the tables of an earlier release in place: a column added to a
definition since is added to the table (``ALTER TABLE ... ADD COLUMN``, appended, with the
column's default for the rows already there). Defaults are exact for those rows, since the
columns added so far (offers) describe what no event before them could do.
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
    if not column.nullable:
        definition += " NOT NULL"
    return definition if column.default is None else f"{definition} DEFAULT {column.default}"


def existing_columns(cursor: Cursor, table: str) -> list[str]:
    """The columns ``table`` has in the database, in their order (none if it is missing)."""
    if cursor.postgres:
        rows = cursor.all(
            "SELECT column_name AS name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            [table],
        )
    else:
        rows = cursor.all(f"PRAGMA table_info({table})")
    return [row["name"] for row in rows]


def upgrade_statements(cursor: Cursor, table: Table) -> list[str]:
    """``ALTER TABLE`` statements adding the columns of ``table``'s definition that the
    database's table (created by an earlier release) lacks. Its rows get each column's
    default; a table that is missing, or has every column, needs none."""
    present = set(existing_columns(cursor, table.name))
    if not present:
        return []
    statements = []
    for column in table.columns:
        if column.name in present:
            continue
        if not column.nullable and column.default is None:
            raise ValueError(
                f"{table.name}.{column.name} joins a table with rows: it needs a default "
                "or to be nullable"
            )
        definition = _column_definition(table, column, cursor.postgres)
        statements.append(f"ALTER TABLE {table.name} ADD COLUMN {definition}")
    return statements


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
    """Create the read-model tables, indexes and views if they are missing, and add to the
    tables of an earlier release the columns they lack (idempotent)."""
    database = ReadModelDatabase(database_url)
    try:
        with database.transaction(immediate=True) as cursor:
            if database.is_postgres:
                # Serialise concurrent migrations (several workers starting at once).
                cursor.execute("SELECT pg_advisory_xact_lock(727401)")
            for table in READ_MODELS:
                for statement in upgrade_statements(cursor, table):
                    cursor.execute(statement)
            for statement in table_statements(database.is_postgres):
                cursor.execute(statement)
            tracking.create_table(cursor)
            for statement in index_statements():
                cursor.execute(statement)
            create_views(cursor)
    finally:
        database.close()
