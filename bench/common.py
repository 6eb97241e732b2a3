"""Small helpers shared by the benchmarks: percentiles, timers, a fresh store."""

from __future__ import annotations

import os
import platform
from pathlib import Path

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/ticketing_bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fresh_store(database_url: str) -> None:
    """Empty the benchmark's database (a dedicated one: never the application's)."""
    from adapters.database_url import parse_database_url

    db = parse_database_url(database_url)
    if db.is_postgres:
        import psycopg

        admin = db.conninfo().replace(f"dbname={db.dbname}", "dbname=postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db.dbname}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db.dbname}"')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(db.sqlite_path + suffix).unlink(missing_ok=True)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
