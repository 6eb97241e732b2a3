"""Creating the notification tables (``projections.notifications.tables``) and the outbox
follower's tracking row."""

from __future__ import annotations

from adapters.log_reader import open_log
from adapters.sql import ReadModelDatabase
from projections import tracking
from projections.notifications.tables import NOTIFICATION_TABLES
from projections.schema import create_statement, index_statements

# The outbox follower's row in ``projection_tracking``.
TRACKING_NAME = "notifications"


def migrate(database_url: str | None = None) -> None:
    """Create the tables if they are missing (idempotent), and start the follower where the
    store stands the first time: notifications are of what happens from then on, so adding
    them to a store with a history mails nobody about the past."""
    log = open_log(database_url, pool_size=1)
    database = ReadModelDatabase(database_url)
    try:
        head = log.recorder.max_notification_id() or 0
        with database.transaction(immediate=True) as cursor:
            if database.is_postgres:
                # Serialise concurrent migrations (several workers starting at once).
                cursor.execute("SELECT pg_advisory_xact_lock(727402)")
            for table in NOTIFICATION_TABLES:
                cursor.execute(create_statement(table, database.is_postgres))
            for statement in index_statements(tables=NOTIFICATION_TABLES):
                cursor.execute(statement)
            tracking.create_table(cursor)
            cursor.execute(
                f"INSERT INTO {tracking.TABLE} (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                [TRACKING_NAME, head],
            )
    finally:
        database.close()
        log.close()
