"""The idempotency store: the exact first answer to a write sent with ``Idempotency-Key``.

The aggregate already makes a keyed command atomic (the key travels in the domain event, so
a retry after a crash between commit and response appends nothing and replays the outcome).
What it cannot keep is an answer that appended nothing (a 4xx refusal) or the exact body of
a 2xx that renders current state. This store keeps both, written after the response is made;
a retry finds it here first, and falls back on the aggregate when that write was lost.
Entries live 24 hours. 5xx and 429 answers are never kept: those are meant to be retried.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.sql import Cursor, ReadModelDatabase

TTL = timedelta(hours=24)
TABLE = "idempotency_responses"


def create_table(cursor: Cursor) -> None:
    timestamp = "TIMESTAMPTZ" if cursor.postgres else "TEXT"
    cursor.execute(
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            scoped_key TEXT PRIMARY KEY,
            request_hash TEXT NOT NULL,
            status INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_at {timestamp} NOT NULL
        )"""
    )


def migrate(database_url: str) -> None:
    database = ReadModelDatabase(database_url)
    try:
        with database.transaction(immediate=True) as cursor:
            create_table(cursor)
    finally:
        database.close()


class IdempotencyStore:
    """The first answers to keyed writes, by the key scoped to its caller."""

    def __init__(self, database: ReadModelDatabase) -> None:
        self.database = database

    def _stamp(self, moment: datetime, cursor: Cursor) -> Any:
        return moment if cursor.postgres else moment.isoformat()

    def find(self, scoped_key: str) -> dict[str, Any] | None:
        """The live entry for this key: ``{request_hash, status, body}``, or ``None``."""

        def lookup(cursor: Cursor) -> dict[str, Any] | None:
            return cursor.one(
                f"SELECT request_hash, status, body FROM {TABLE} "
                "WHERE scoped_key = ? AND created_at > ?",
                [scoped_key, self._stamp(datetime.now(UTC) - TTL, cursor)],
            )

        return self.database.read(lookup)

    def record(self, scoped_key: str, request_hash: str, status: int, body: str) -> None:
        """Keep the first answer; a concurrent duplicate's answer does not replace it."""
        now = datetime.now(UTC)
        with self.database.transaction() as cursor:
            if random.random() < 0.01:  # sweep expired entries now and then
                cursor.execute(
                    f"DELETE FROM {TABLE} WHERE created_at <= ?", [self._stamp(now - TTL, cursor)]
                )
            cursor.execute(
                f"INSERT INTO {TABLE} (scoped_key, request_hash, status, body, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (scoped_key) DO UPDATE SET "
                "request_hash = excluded.request_hash, status = excluded.status, "
                "body = excluded.body, created_at = excluded.created_at "
                f"WHERE {TABLE}.created_at <= ?",
                [
                    scoped_key,
                    request_hash,
                    status,
                    body,
                    self._stamp(now, cursor),
                    self._stamp(now - TTL, cursor),
                ],
            )
