"""migrate() brings the read models of a release before offers to today's schema in place,
on both stores, keeping every row, and the projection carries on from where it stood."""

from __future__ import annotations

import pytest

from adapters.sql import ReadModelDatabase
from domain.service import TicketingService
from projections.queries import ReadModel
from projections.runner import ProjectionRunner
from projections.schema import existing_columns, migrate, upgrade_statements
from projections.tables import (
    EVENT_STATUS,
    INTEGER,
    OFFERS,
    READ_MODELS,
    TEXT,
    USER_HOLDINGS,
    Column,
    Table,
)
from projections.verify import verify
from tests.projections.support import Clock, random_history, read_model_rows

# What the release before offers lacked.
ADDED_COLUMNS = {
    EVENT_STATUS.name: ("held_tickets", "waitlist_mode", "offer_ttl_seconds"),
    USER_HOLDINGS.name: ("offer_id", "offer_quantity", "expires_at"),
}


def project(store: TicketingService, database_url: str) -> None:
    runner = ProjectionRunner(database_url, log=store)
    try:
        runner.process_available()
    finally:
        runner.close()


def make_earlier_release_schema(database_url: str) -> None:
    """The read models as the release before offers left them: no offers table, none of
    the columns added since (their rows as that release wrote them)."""
    database = ReadModelDatabase(database_url)
    try:
        with database.transaction() as cursor:
            cursor.execute(f"DROP TABLE {OFFERS.name}")
            for table, columns in ADDED_COLUMNS.items():
                for column in columns:
                    cursor.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    finally:
        database.close()


def columns(database_url: str) -> dict[str, list[str]]:
    database = ReadModelDatabase(database_url)
    try:
        return database.read(
            lambda cursor: {
                table.name: existing_columns(cursor, table.name) for table in READ_MODELS
            }
        )
    finally:
        database.close()


def test_migrate_upgrades_an_earlier_release_s_read_models_keeping_every_row(
    store: TicketingService, database_url: str
) -> None:
    random_history(store, 400, events=2, seed=5)
    project(store, database_url)
    rows_before = read_model_rows(database_url)
    make_earlier_release_schema(database_url)
    earlier = columns(database_url)
    assert earlier[OFFERS.name] == [] and "held_tickets" not in earlier[EVENT_STATUS.name]

    migrate(database_url)
    migrate(database_url)  # a second run finds nothing to do

    assert columns(database_url) == {table.name: list(table.column_names) for table in READ_MODELS}
    assert read_model_rows(database_url) == rows_before
    assert {row["waitlist_mode"] for row in rows_before[EVENT_STATUS.name]} == {"auto"}


def test_the_projection_carries_on_into_the_upgraded_tables(
    store: TicketingService, database_url: str, clock: Clock
) -> None:
    event_ids = random_history(store, 300, events=2, seed=8)
    project(store, database_url)
    make_earlier_release_schema(database_url)
    migrate(database_url)
    offering = store.create_event("organizer", "After the upgrade", 1, 1, waitlist_mode="offer")
    alice = store.book(offering.id, "alice", 1)
    store.book(offering.id, "bob", 1)
    store.cancel("alice", booking_id=alice.booking_id)

    project(store, database_url)

    read_model = ReadModel(database_url, log=store)
    try:
        for event_id in [*event_ids, offering.id]:
            report = verify(store, read_model, event_id)
            assert report["consistent"], report["differences"][:5]
        offers, _ = read_model.user_offers("bob")
        assert [row["event_id"] for row in offers] == [offering.id]
    finally:
        read_model.close()


def test_a_column_added_without_a_default_or_null_to_a_table_of_rows_is_refused(
    store: TicketingService, database_url: str
) -> None:
    probe = Table("upgrade_probe", (Column("id", TEXT), Column("seats", INTEGER)), ("id",))
    database = ReadModelDatabase(database_url)
    try:
        with pytest.raises(ValueError, match="upgrade_probe.seats"):
            with database.transaction() as cursor:  # rolled back by the refusal
                cursor.execute("CREATE TABLE upgrade_probe (id TEXT PRIMARY KEY)")
                upgrade_statements(cursor, probe)
        assert database.read(lambda cursor: existing_columns(cursor, "upgrade_probe")) == []
    finally:
        database.close()
