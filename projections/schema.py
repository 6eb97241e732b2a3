"""The read-model schema: plain tables for analysts, written only by the projection.

Tables (see README "Read models" for the column reference and example queries):

- ``event_status``   one row per ticketed event, its counters as of ``version``;
- ``bookings``       every booking ever made, ``status`` confirmed or cancelled;
- ``waiting_list``   every waitlist entry, ``status`` waiting, promoted or left, with the
                     store order ``queue_seq`` that makes the queue FIFO;
- ``user_holdings``  one row per user and event: what the user holds there now;
- ``projection_tracking``  the last store position applied, committed with the rows.

The view ``waiting_list_positions`` gives every waiting entry its current 1-based position.
"""

from __future__ import annotations

from adapters.sql import Cursor, ReadModelDatabase

TABLES = ("event_status", "bookings", "waiting_list", "user_holdings")
TRACKING_TABLE = "projection_tracking"
REBUILD_SUFFIX = "_rebuild"


def _types(postgres: bool) -> dict[str, str]:
    return {
        "ts": "TIMESTAMPTZ" if postgres else "TEXT",
        "big": "BIGINT" if postgres else "INTEGER",
    }


def table_statements(postgres: bool, suffix: str = "") -> list[str]:
    t = _types(postgres)
    return [
        f"""CREATE TABLE IF NOT EXISTS event_status{suffix} (
            event_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            organizer_id TEXT NOT NULL,
            total_tickets INTEGER NOT NULL,
            available_tickets INTEGER NOT NULL,
            booked_tickets INTEGER NOT NULL,
            waiting_list_count INTEGER NOT NULL,
            waiting_tickets INTEGER NOT NULL,
            max_tickets_per_user INTEGER NOT NULL,
            status TEXT NOT NULL,
            version {t["big"]} NOT NULL,
            created_at {t["ts"]} NOT NULL,
            closed_at {t["ts"]},
            updated_at {t["ts"]} NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS bookings{suffix} (
            booking_id TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            status TEXT NOT NULL,
            source TEXT NOT NULL,
            booked_at {t["ts"]} NOT NULL,
            cancelled_at {t["ts"]},
            cancelled_by TEXT,
            updated_at {t["ts"]} NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS waiting_list{suffix} (
            waiting_list_id TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            quantity_requested INTEGER NOT NULL,
            quantity_waiting INTEGER NOT NULL,
            quantity_served INTEGER NOT NULL,
            queue_seq {t["big"]} NOT NULL,
            status TEXT NOT NULL,
            joined_at {t["ts"]} NOT NULL,
            first_served_at {t["ts"]},
            promoted_at {t["ts"]},
            left_at {t["ts"]},
            updated_at {t["ts"]} NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS user_holdings{suffix} (
            user_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            status TEXT NOT NULL,
            booking_id TEXT,
            quantity INTEGER NOT NULL,
            waiting_list_id TEXT,
            waiting_quantity INTEGER NOT NULL,
            updated_at {t["ts"]} NOT NULL,
            PRIMARY KEY (user_id, event_id)
        )""",
    ]


# (name, table, columns): the single definition of the read models' secondary indexes.
INDEXES = (
    ("event_status_created", "event_status", "created_at, event_id"),
    ("bookings_event", "bookings", "event_id, status, booked_at"),
    ("bookings_user", "bookings", "user_id"),
    ("waiting_list_queue", "waiting_list", "event_id, status, queue_seq"),
    ("waiting_list_user", "waiting_list", "user_id"),
    ("user_holdings_event", "user_holdings", "event_id, status"),
)


def index_statements(suffix: str = "") -> list[str]:
    """The indexes of the ``suffix`` tables, each named after its live index plus ``suffix``."""
    return [
        f"CREATE INDEX IF NOT EXISTS {name}{suffix} ON {table}{suffix} ({columns})"
        for name, table, columns in INDEXES
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


def tracking_statement(postgres: bool) -> str:
    t = _types(postgres)
    return f"""CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} (
        name TEXT PRIMARY KEY,
        position {t["big"]} NOT NULL,
        updated_at {t["ts"]}
    )"""


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
            cursor.execute(tracking_statement(database.is_postgres))
            for statement in index_statements():
                cursor.execute(statement)
            create_views(cursor)
    finally:
        database.close()
