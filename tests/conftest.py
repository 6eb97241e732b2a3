"""Shared fixtures: every store-backed test runs on the embedded SQLite file and on PostgreSQL.

PostgreSQL is the server named by ``TEST_POSTGRES_URL`` (default: the local ``test``
database). Each test session works in its own scratch database on that server, created at
start and dropped at the end, so concurrent runs never see each other's tables. On a
developer's machine without PostgreSQL the PostgreSQL variants are skipped with the reason
shown; with ``CI=true`` an unreachable server stops the whole run instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from adapters import open_service
from domain.service import TicketingService

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Child processes started by tests inherit the parent's scratch database through the env.
OWNS_SCRATCH = "TICKETING_TEST_DB" not in os.environ
SCRATCH_DATABASE = os.environ.setdefault("TICKETING_TEST_DB", f"ticketing_test_{os.getpid()}")
POSTGRES_URL = SERVER_URL.rsplit("/", 1)[0] + "/" + SCRATCH_DATABASE
FAST_HASHING = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST": "1024"}


def _postgres_problem() -> str | None:
    import psycopg

    from adapters.database_url import parse_database_url

    try:
        with psycopg.connect(
            parse_database_url(SERVER_URL).conninfo(), connect_timeout=3, autocommit=True
        ) as conn:
            if not OWNS_SCRATCH:
                return None
            conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DATABASE}"')
            conn.execute(f'CREATE DATABASE "{SCRATCH_DATABASE}"')
            return None
    except psycopg.Error as error:
        return f"PostgreSQL at {SERVER_URL} is unreachable: {error}".strip()


POSTGRES_PROBLEM = _postgres_problem()


def pytest_sessionstart(session: pytest.Session) -> None:
    if POSTGRES_PROBLEM and os.environ.get("CI", "").lower() == "true":
        pytest.exit(f"CI=true requires PostgreSQL: {POSTGRES_PROBLEM}", returncode=3)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if POSTGRES_PROBLEM or not OWNS_SCRATCH:
        return
    import psycopg

    from adapters.database_url import parse_database_url

    with psycopg.connect(parse_database_url(SERVER_URL).conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DATABASE}" WITH (FORCE)')


def reset_postgres(url: str = POSTGRES_URL) -> None:
    """Drop every table of the scratch database: each test starts from an empty store."""
    import psycopg

    from adapters.database_url import parse_database_url

    with psycopg.connect(parse_database_url(url).conninfo(), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(POSTGRES_PROBLEM is not None, reason=POSTGRES_PROBLEM or ""),
        ],
    ),
]


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty store: a new SQLite file, or the emptied PostgreSQL test database."""
    if request.param == "postgres":
        reset_postgres()
        return POSTGRES_URL
    return f"sqlite:///{tmp_path}/ticketing.db"


@pytest.fixture
def postgres_url() -> str:
    if POSTGRES_PROBLEM:
        pytest.skip(POSTGRES_PROBLEM)
    reset_postgres()
    return POSTGRES_URL


@pytest.fixture
def service(database_url: str) -> Iterator[TicketingService]:
    svc = open_service(database_url, create_tables=True, **FAST_HASHING)
    yield svc
    svc.close()
