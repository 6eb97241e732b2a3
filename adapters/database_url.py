"""One setting, ``DATABASE_URL``, chooses the event store.

``sqlite:///var/ticketing.db`` (the default) is an embedded file; ``postgresql://user@host:port/db``
is a server shared by several API workers and the projection process. This module turns the
URL into the eventsourcing library's environment; nothing else reads the URL's parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

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
    """The store ``url`` names; no URL is the default store. The setting itself is read by
    ``api.config``, which hands the URL on."""
    url = url or DEFAULT_DATABASE_URL
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
