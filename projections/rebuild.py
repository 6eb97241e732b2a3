"""Drop and rebuild every read model from the store, while the API keeps serving.

The rebuild projects into fresh ``*_rebuild`` tables with the same code as the live runner,
then, holding the live tracking row's lock (so the live runner pauses), applies the last few
events and swaps the tables in one transaction. Readers see the old tables until the commit
and the new ones after it.

On PostgreSQL the indexes are built on the ``*_rebuild`` tables before the swap, under
suffixed names, after the bulk load (cheaper than maintaining them during it). The swap locks
the live tables against readers, so there it only drops and renames tables and renames
indexes: catalogue changes, not index builds, are what readers wait for.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from adapters import open_service
from adapters.sql import Cursor
from domain.service import TicketingService
from projections.runner import LIVE, ProjectionRunner
from projections.schema import (
    INDEXES,
    REBUILD_SUFFIX,
    TABLES,
    TRACKING_TABLE,
    create_views,
    index_statements,
    primary_key_index,
    table_statements,
    tracking_statement,
)

REBUILD = "read_models_rebuild"


def rebuild(
    database_url: str | None = None,
    *,
    service: TicketingService | None = None,
    batch_size: int = 5000,
    progress: bool = True,
    out: TextIO = sys.stderr,
) -> int:
    """Rebuild all read models; returns the number of store positions processed."""
    owns_service = service is None
    service = service or open_service(database_url, pool_size=2)
    runner = ProjectionRunner(
        database_url,
        service=service,
        batch_size=batch_size,
        suffix=REBUILD_SUFFIX,
        tracking_name=REBUILD,
    )
    try:
        _prepare(runner)
        total = service.recorder.max_notification_id() or 0
        report = _progress_printer(total, out) if progress else (lambda done: None)
        done = 0
        while True:
            with runner.database.transaction(immediate=True) as cursor:
                applied = runner.apply_batch(cursor)
            if applied == 0:
                break
            done += applied
            report(runner.position())
        if runner.database.is_postgres:
            _build_rebuild_indexes(runner)
        _swap(runner)
        if progress:
            out.write("\n")
        return done
    finally:
        runner.database.close()
        if owns_service:
            service.close()


def _prepare(runner: ProjectionRunner) -> None:
    with runner.database.transaction(immediate=True) as cursor:
        for table in TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}{REBUILD_SUFFIX}")
        if cursor.postgres:
            # Earlier rebuilds left the live primary keys named after the rebuild tables
            # (event_status_rebuild_pkey); give them back theirs, or the new rebuild tables'
            # keys would get other names than the ones the swap renames.
            for table in TABLES:
                cursor.execute(
                    f"ALTER INDEX IF EXISTS {primary_key_index(table + REBUILD_SUFFIX)} "
                    f"RENAME TO {primary_key_index(table)}"
                )
        for statement in table_statements(cursor.postgres, REBUILD_SUFFIX):
            cursor.execute(statement)
        cursor.execute(tracking_statement(cursor.postgres))
        cursor.execute(f"DELETE FROM {TRACKING_TABLE} WHERE name = ?", [REBUILD])


def _build_rebuild_indexes(runner: ProjectionRunner) -> None:
    """Index the rebuild tables while only the rebuild uses them (no live lock held)."""
    with runner.database.transaction() as cursor:
        for statement in index_statements(REBUILD_SUFFIX):
            cursor.execute(statement)


def _swap(runner: ProjectionRunner) -> None:
    with runner.database.transaction(immediate=True) as cursor:
        lock = " FOR UPDATE" if cursor.postgres else ""
        cursor.execute(
            f"INSERT INTO {TRACKING_TABLE} (name, position) VALUES (?, 0) "
            "ON CONFLICT (name) DO NOTHING",
            [LIVE],
        )
        cursor.one(f"SELECT position FROM {TRACKING_TABLE} WHERE name = ?{lock}", [LIVE])
        while runner.apply_batch(cursor):
            pass
        position = runner.lock_position(cursor)
        cursor.execute("DROP VIEW IF EXISTS waiting_list_positions")
        for table in TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"ALTER TABLE {table}{REBUILD_SUFFIX} RENAME TO {table}")
        if cursor.postgres:
            _rename_rebuild_indexes(cursor)
        else:
            # SQLite cannot rename an index, so they are built here under their live names: in
            # WAL mode readers keep reading the old tables meanwhile, only writers wait.
            for statement in index_statements():
                cursor.execute(statement)
        create_views(cursor)
        cursor.execute(f"UPDATE {TRACKING_TABLE} SET position = ? WHERE name = ?", [position, LIVE])
        cursor.execute(f"DELETE FROM {TRACKING_TABLE} WHERE name = ?", [REBUILD])


def _rename_rebuild_indexes(cursor: Cursor) -> None:
    for table in TABLES:
        cursor.execute(
            f"ALTER INDEX {primary_key_index(table + REBUILD_SUFFIX)} "
            f"RENAME TO {primary_key_index(table)}"
        )
    for name, _table, _columns in INDEXES:
        cursor.execute(f"ALTER INDEX {name}{REBUILD_SUFFIX} RENAME TO {name}")


def _progress_printer(total: int, out: TextIO) -> Callable[[int], None]:
    started = time.monotonic()

    def report(done: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate and total > done else 0.0
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        out.write(f"\rrebuild [{bar}] {done}/{total} events  {rate:,.0f}/s  ETA {eta:,.0f}s")
        out.flush()

    return report
