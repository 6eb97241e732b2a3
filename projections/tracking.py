"""Where each follower of the log stands: the last store position it applied.

A follower's batch locks its row first (``lock``), so a second follower of the same name
started by mistake waits for the first instead of applying anything twice, and saves the new
position (``save``) in the same transaction as the batch's rows: both commit, or neither.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.sql import Cursor, ReadModelDatabase
from projections.tables import BIGINT, TIMESTAMP

TABLE = "projection_tracking"
# The live read models' row; a rebuild tracks its own tables under another name.
LIVE = "read_models"


def create_table(cursor: Cursor) -> None:
    postgres = cursor.postgres
    cursor.execute(
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        name TEXT PRIMARY KEY,
        position {BIGINT.spelled(postgres)} NOT NULL,
        updated_at {TIMESTAMP.spelled(postgres)}
    )"""
    )


def lock(cursor: Cursor, name: str) -> int:
    """Inside the caller's transaction: hold ``name``'s row until it ends; its position."""
    cursor.execute(
        f"INSERT INTO {TABLE} (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
        [name],
    )
    # On SQLite the caller's immediate transaction already holds the one write lock.
    lock = " FOR UPDATE" if cursor.postgres else ""
    row = cursor.one(f"SELECT position FROM {TABLE} WHERE name = ?{lock}", [name])
    return int(row["position"]) if row else 0


def save(cursor: Cursor, name: str, position: int) -> None:
    now: Any = datetime.now(UTC)
    cursor.execute(
        f"UPDATE {TABLE} SET position = ?, updated_at = ? WHERE name = ?",
        [position, now if cursor.postgres else now.isoformat(), name],
    )


def forget(cursor: Cursor, name: str) -> None:
    cursor.execute(f"DELETE FROM {TABLE} WHERE name = ?", [name])


def position(database: ReadModelDatabase, name: str) -> int:
    """``name``'s committed position (0 before its first batch); fails if never migrated."""
    rows = database.query(f"SELECT position FROM {TABLE} WHERE name = ?", [name])
    return int(rows[0]["position"]) if rows else 0
