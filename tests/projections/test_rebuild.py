"""The rebuild's table swap: the live tables end with migrate()'s indexes, and on PostgreSQL
the swap (which holds the locks readers wait on) only renames them."""

from __future__ import annotations

import pytest

from adapters.sql import Cursor, ReadModelDatabase
from domain.service import TicketingService
from projections import rebuild as rebuild_module
from projections.rebuild import rebuild
from projections.schema import REBUILD_SUFFIX
from projections.tables import READ_MODELS
from tests.projections.support import random_history

TABLES = tuple(table.name for table in READ_MODELS)


def index_definitions(database_url: str, tables: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Every index of ``tables``, by table and index name, with its definition."""
    database = ReadModelDatabase(database_url)
    try:
        if database.is_postgres:
            rows = database.query(
                "SELECT tablename AS table_name, indexname AS name, indexdef AS definition "
                "FROM pg_indexes WHERE schemaname = current_schema()"
            )
        else:
            rows = database.query(
                "SELECT tbl_name AS table_name, name, sql AS definition "
                "FROM sqlite_master WHERE type = 'index'"
            )
    finally:
        database.close()
    found: dict[str, dict[str, str]] = {table: {} for table in tables}
    for row in rows:
        if row["table_name"] in found:
            found[row["table_name"]][row["name"]] = row["definition"]
    return found


def relations_named_like_the_rebuild(database_url: str) -> list[str]:
    database = ReadModelDatabase(database_url)
    try:
        if database.is_postgres:
            rows = database.query(
                "SELECT relname AS name FROM pg_class "
                "WHERE relnamespace = current_schema()::regnamespace"
            )
        else:
            rows = database.query("SELECT name FROM sqlite_master")
    finally:
        database.close()
    return sorted(row["name"] for row in rows if REBUILD_SUFFIX in row["name"])


def test_rebuild_leaves_the_live_tables_with_exactly_the_indexes_migrate_creates(
    store: TicketingService, database_url: str
) -> None:
    migrated = index_definitions(database_url, TABLES)
    assert all(migrated.values())
    random_history(store, 300, events=2, seed=5)
    for _ in range(2):
        rebuild(database_url, log=store, progress=False)
        assert index_definitions(database_url, TABLES) == migrated
        assert relations_named_like_the_rebuild(database_url) == []


@pytest.mark.postgres
def test_postgres_rebuild_builds_indexes_before_the_swap_which_only_renames_them(
    postgres_store: TicketingService, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated = index_definitions(postgres_url, TABLES)
    random_history(postgres_store, 300, events=2, seed=5)
    rebuild_tables = tuple(table + REBUILD_SUFFIX for table in TABLES)
    before_swap: dict[str, dict[str, str]] = {}
    swap_statements: list[str] = []
    recording = False
    real_swap, real_execute = rebuild_module._swap, Cursor.execute

    def spying_swap(runner) -> None:
        nonlocal recording
        before_swap.update(index_definitions(postgres_url, rebuild_tables))
        recording = True
        try:
            real_swap(runner)
        finally:
            recording = False

    def spying_execute(cursor: Cursor, sql: str, params=()) -> int:
        if recording:
            swap_statements.append(" ".join(sql.split()).upper())
        return real_execute(cursor, sql, params)

    monkeypatch.setattr(rebuild_module, "_swap", spying_swap)
    monkeypatch.setattr(Cursor, "execute", spying_execute)
    rebuild(postgres_url, log=postgres_store, progress=False)

    assert swap_statements, "the swap ran no statement through the spied cursor"
    assert [s for s in swap_statements if s.startswith("CREATE INDEX")] == []
    assert [s for s in swap_statements if s.startswith("CREATE UNIQUE INDEX")] == []
    unsuffixed = {
        table.removesuffix(REBUILD_SUFFIX): {
            name.replace(REBUILD_SUFFIX, ""): definition.replace(REBUILD_SUFFIX, "")
            for name, definition in indexes.items()
        }
        for table, indexes in before_swap.items()
    }
    assert unsuffixed == migrated
    assert index_definitions(postgres_url, TABLES) == migrated


@pytest.mark.postgres
def test_postgres_rebuild_renames_primary_keys_an_earlier_rebuild_left_misnamed(
    postgres_store: TicketingService, postgres_url: str
) -> None:
    migrated = index_definitions(postgres_url, TABLES)
    random_history(postgres_store, 300, events=2, seed=5)
    database = ReadModelDatabase(postgres_url)
    try:
        with database.transaction() as cursor:
            # Earlier rebuilds renamed the tables but left their keys' rebuild-time names.
            for table in TABLES:
                cursor.execute(f"ALTER INDEX {table}_pkey RENAME TO {table}{REBUILD_SUFFIX}_pkey")
    finally:
        database.close()
    for _ in range(2):
        rebuild(postgres_url, log=postgres_store, progress=False)
        assert index_definitions(postgres_url, TABLES) == migrated
        assert relations_named_like_the_rebuild(postgres_url) == []
