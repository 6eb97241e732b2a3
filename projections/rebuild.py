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

from adapters.log_reader import StoreLog
from adapters.sql import Cursor
from projections import tracking
from projections.runner import ProjectionRunner
from projections.schema import (
    REBUILD_SUFFIX,
    create_views,
    index_statements,
    primary_key_index,
    table_statements,
)
from projections.tables import READ_MODELS

REBUILD = "read_models_rebuild"


def rebuild(
    database_url: str | None = None,
    *,
    log: StoreLog | None = None,
    batch_size: int = 5000,
    progress: bool = True,
    out: TextIO = sys.stderr,
) -> int:
    """Rebuild all read models from ``log`` (by default, the log of the store ``database_url``
    names); returns the number of store positions processed."""
    runner = ProjectionRunner(
        database_url,
        log=log,
        batch_size=batch_size,
        suffix=REBUILD_SUFFIX,
        tracking_name=REBUILD,
    )
    try:
        _prepare(runner)
        total = runner.log.recorder.max_notification_id() or 0
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
        runner.close()


def _prepare(runner: ProjectionRunner) -> None:
    with runner.database.transaction(immediate=True) as cursor:
        for table in READ_MODELS:
            cursor.execute(f"DROP TABLE IF EXISTS {table.name}{REBUILD_SUFFIX}")
        if cursor.postgres:
            # Earlier rebuilds left the live primary keys named after the rebuild tables
            # (event_status_rebuild_pkey); give them back theirs, or the new rebuild tables'
            # keys would get other names than the ones the swap renames.
            for table in READ_MODELS:
                cursor.execute(
                    f"ALTER INDEX IF EXISTS {primary_key_index(table.name + REBUILD_SUFFIX)} "
                    f"RENAME TO {primary_key_index(table.name)}"
                )
        for statement in table_statements(cursor.postgres, REBUILD_SUFFIX):
            cursor.execute(statement)
        tracking.create_table(cursor)
        tracking.forget(cursor, REBUILD)


def _build_rebuild_indexes(runner: ProjectionRunner) -> None:
    """Index the rebuild tables while only the rebuild uses them (no live lock held)."""
    with runner.database.transaction() as cursor:
        for statement in index_statements(REBUILD_SUFFIX):
            cursor.execute(statement)


def _swap(runner: ProjectionRunner) -> None:
    with runner.database.transaction(immediate=True) as cursor:
        tracking.lock(cursor, tracking.LIVE)  # the live runner waits from here to the commit
        while runner.apply_batch(cursor):
            pass
        position = tracking.lock(cursor, REBUILD)
        cursor.execute("DROP VIEW IF EXISTS waiting_list_positions")
        for table in READ_MODELS:
            cursor.execute(f"DROP TABLE IF EXISTS {table.name}")
            cursor.execute(f"ALTER TABLE {table.name}{REBUILD_SUFFIX} RENAME TO {table.name}")
        if cursor.postgres:
            _rename_rebuild_indexes(cursor)
        else:
            # SQLite cannot rename an index, so they are built here under their live names: in
            # WAL mode readers keep reading the old tables meanwhile, only writers wait.
            for statement in index_statements():
                cursor.execute(statement)
        create_views(cursor)
        tracking.save(cursor, tracking.LIVE, position)
        tracking.forget(cursor, REBUILD)


def _rename_rebuild_indexes(cursor: Cursor) -> None:
    for table in READ_MODELS:
        cursor.execute(
            f"ALTER INDEX {primary_key_index(table.name + REBUILD_SUFFIX)} "
            f"RENAME TO {primary_key_index(table.name)}"
        )
        for index in table.indexes:
            cursor.execute(f"ALTER INDEX {index.name}{REBUILD_SUFFIX} RENAME TO {index.name}")


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
