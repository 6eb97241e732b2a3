"""Each read-model table is defined once; migrate() creates exactly that definition."""

from __future__ import annotations

import pytest

from adapters.sql import ReadModelDatabase
from domain.service import TicketingService
from projections.tables import BOOKINGS, READ_MODELS, Table


def test_a_new_row_has_every_column_with_null_for_those_not_given() -> None:
    row = BOOKINGS.row(booking_id="bk_1", quantity=2)
    assert list(row) == list(BOOKINGS.column_names)
    assert (row["booking_id"], row["quantity"], row["cancelled_at"]) == ("bk_1", 2, None)


def test_a_row_naming_a_column_its_table_lacks_is_refused() -> None:
    with pytest.raises(KeyError, match="bookings has no column seat"):
        BOOKINGS.row(booking_id="bk_1", seat=3)


# information_schema's names for the types the DDL spells.
POSTGRES_TYPES = {
    "TEXT": "TEXT",
    "INT4": "INTEGER",
    "INT8": "BIGINT",
    "FLOAT8": "DOUBLE PRECISION",
    "TIMESTAMPTZ": "TIMESTAMPTZ",
}


def columns_in_database(database: ReadModelDatabase, table: Table) -> list[tuple[str, str, bool]]:
    """(name, type, nullable) of each column of ``table`` as the database reports them."""
    if database.is_postgres:
        rows = database.query(
            "SELECT column_name AS name, UPPER(udt_name) AS type, is_nullable = 'YES' AS nullable "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position",
            [table.name],
        )
        return [(row["name"], POSTGRES_TYPES[row["type"]], row["nullable"]) for row in rows]
    rows = database.query(f"PRAGMA table_info({table.name})")
    # SQLite lets a TEXT PRIMARY KEY hold NULL: only NOT NULL columns report notnull.
    return [(row["name"], row["type"], not row["notnull"]) for row in rows]


def test_migrate_creates_each_table_with_exactly_its_defined_columns(
    store: TicketingService, database_url: str
) -> None:
    database = ReadModelDatabase(database_url)
    try:
        for table in READ_MODELS:
            expected = [
                (
                    column.name,
                    column.type.spelled(database.is_postgres),
                    column.nullable
                    or (table.primary_key == (column.name,) and not database.is_postgres),
                )
                for column in table.columns
            ]
            assert columns_in_database(database, table) == expected, table.name
    finally:
        database.close()
