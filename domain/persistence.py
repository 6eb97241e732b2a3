"""One setting, ``DATABASE_URL``, chooses the event store.

``sqlite:///var/ticketing.db`` (the default) is an embedded file; ``postgresql://user@host:port/db``
is a server shared by several API workers and the projection process. This module turns the
URL into the eventsourcing library's environment; nothing else reads the URL's parts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse
from uuid import UUID

DEFAULT_DATABASE_URL = "sqlite:///var/ticketing.db"


@dataclass(frozen=True)
class Database:
    url: str
    kind: str  # "sqlite" or "postgres"
    sqlite_path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"

    def conninfo(self) -> str:
        """A libpq connection string (PostgreSQL only)."""
        parts = [f"host={self.host}", f"port={self.port}", f"dbname={self.dbname}"]
        if self.user:
            parts.append(f"user={self.user}")
        if self.password:
            parts.append(f"password={self.password}")
        return " ".join(parts)


def parse_database_url(url: str | None = None) -> Database:
    url = url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them.
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        if not path:
            raise ValueError(
                "DATABASE_URL for SQLite needs a file path: sqlite:///var/ticketing.db"
            )
        return Database(url=url, kind="sqlite", sqlite_path=path)
    if parsed.scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return Database(
            url=url,
            kind="postgres",
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"),
            password=unquote(parsed.password or ""),
            dbname=(parsed.path or "/").lstrip("/") or "postgres",
        )
    raise ValueError(
        f"Unsupported DATABASE_URL scheme {parsed.scheme!r}: use sqlite:///PATH or postgresql://..."
    )


def eventsourcing_env(db: Database, *, create_tables: bool, pool_size: int = 5) -> dict[str, str]:
    """The eventsourcing library's settings for this database.

    Table creation is off by default: the library's create-on-construct races when several
    workers start at once, so schema creation is the explicit ``ticketing migrate`` step.
    """
    env = {"CREATE_TABLE": "y" if create_tables else "n"}
    if db.is_postgres:
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=db.dbname,
            POSTGRES_HOST=db.host,
            POSTGRES_PORT=str(db.port),
            POSTGRES_USER=db.user,
            POSTGRES_PASSWORD=db.password,
            POSTGRES_POOL_SIZE=str(pool_size),
            POSTGRES_MAX_OVERFLOW=str(pool_size),
            POSTGRES_CONNECT_TIMEOUT="5",
            POSTGRES_LOCK_TIMEOUT="5",
            # After a PostgreSQL restart every pooled connection is dead; without a check on
            # checkout, requests burn their retries on them and fail after recovery.
            POSTGRES_PRE_PING="y",
        )
    else:
        Path(db.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=db.sqlite_path,
            SQLITE_LOCK_TIMEOUT="10",
        )
    return env


LOCK_TIMEOUT_MS = 5000


class PostgresEventLocks:
    """One writer per ticketed event across processes, by PostgreSQL advisory lock.

    Lanes already serialise an event's commands inside a process; this extends that to every
    process sharing the store, so the leaders of two API workers take turns instead of both
    deciding on the same version and one of them losing the append. It is a fairness and
    efficiency device only: without it the store's version check still refuses the stale
    append and the loser retries. This is the one piece of SQL on the write side, kept here
    beside the rest of the persistence wiring.
    """

    def __init__(self, db: Database, events_table: str, max_connections: int = 8) -> None:
        from psycopg import sql
        from psycopg_pool import ConnectionPool

        self._head_version = sql.SQL(
            "SELECT max(originator_version) AS head FROM {} WHERE originator_id = %s"
        ).format(sql.Identifier(events_table))

        self._pool = ConnectionPool(
            db.conninfo(),
            min_size=1,
            max_size=max_connections,
            # A writer that stalls while holding an event's lock must not stall every other
            # process forever: waiting past this is a store error (retried, then 503).
            kwargs={"autocommit": True, "options": f"-c lock_timeout={LOCK_TIMEOUT_MS}"},
            open=True,
            timeout=2,  # a lock connection not to be had soon is a store error: retried
        )

    @contextmanager
    def exclusive(self, aggregate_id: UUID) -> Iterator[int | None]:
        """Hold the event's lock; yields the stored head version as of holding it, so a
        leader whose cached state is already at that version can skip its catch-up query."""
        import psycopg
        from eventsourcing.persistence import OperationalError

        key = int.from_bytes(aggregate_id.bytes[:8], "big", signed=True)
        try:
            with self._pool.connection() as conn:
                with conn.pipeline():  # one round trip; the second statement sees the
                    conn.execute("SELECT pg_advisory_lock(%s)", (key,))  # state after the lock
                    head = conn.execute(self._head_version, (aggregate_id,))
                row = head.fetchone()
                try:
                    yield row[0] if row else None
                finally:
                    if not conn.broken:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            # A lost lock connection is a transient store error: the batch is retried.
            raise OperationalError(str(error)) from error

    def close(self) -> None:
        self._pool.close()


class NoEventLocks:
    """A single process (the embedded SQLite default) needs nothing beyond its lanes."""

    @contextmanager
    def exclusive(self, aggregate_id: UUID) -> Iterator[int | None]:
        yield None  # head unknown: the leader catches up from the store itself

    def close(self) -> None:
        pass
