"""A thin connection layer for the read-model tables on SQLite or PostgreSQL.

SQL in this package is written once, with ``?`` placeholders; on PostgreSQL they become
``%s``. Rows come back as dicts. Nothing here knows about tickets.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from adapters.database_url import Database, parse_database_url

T = TypeVar("T")


class ReadModelDatabase:
    """Connections to the database that holds the read models (the store's own database)."""

    def __init__(self, database_url: str | None = None) -> None:
        self.db: Database = parse_database_url(database_url)
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()

    @property
    def is_postgres(self) -> bool:
        return self.db.is_postgres

    def connect(self) -> Any:
        """A new connection (caller owns it): autocommit off on both drivers."""
        if self.db.is_postgres:
            import psycopg
            from psycopg.rows import dict_row

            return psycopg.connect(self.db.conninfo(), row_factory=dict_row, connect_timeout=5)
        conn = sqlite3.connect(self.db.sqlite_path, timeout=30, isolation_level=None)
        conn.row_factory = _dict_factory
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _thread_connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or _is_closed(conn):
            conn = self._local.conn = self.connect()
            if self.db.is_postgres:
                conn.autocommit = True  # transactions are explicit; see ``query``
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """This thread's connection, forgotten if an error left it broken."""
        conn = self._thread_connection()
        try:
            yield conn
        except Exception:
            if _is_broken(conn):
                self._local.conn = None
            raise

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Cursor]:
        """One transaction on this thread's connection; rolled back on any error.

        ``immediate`` takes SQLite's write lock up front, so two writers serialise at the
        start instead of failing at commit.
        """
        with self._connection() as conn:
            if self.db.is_postgres:
                with conn.transaction():
                    yield Cursor(conn, postgres=True)
            else:
                conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    yield Cursor(conn, postgres=False)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")

    def read(self, work: Callable[[Cursor], T]) -> T:
        """Run a read-only unit of work, once more on a fresh connection if the link was lost
        (a restarted server or a terminated backend must not fail the next request)."""
        return self._retried(lambda: self._in_transaction(work))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """One read statement, retried as ``read``. On PostgreSQL it runs on its own
        (autocommit): one round trip instead of three (BEGIN, the statement, COMMIT)."""
        if not self.db.is_postgres:
            return self.read(lambda cursor: cursor.all(sql, params))
        return self._retried(lambda: self._alone(sql, params))

    def _in_transaction(self, work: Callable[[Cursor], T]) -> T:
        with self.transaction() as cursor:
            return work(cursor)

    def _alone(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with self._connection() as conn:
            return Cursor(conn, postgres=True).all(sql, params)

    @staticmethod
    def _retried(attempt: Callable[[], T]) -> T:
        try:
            return attempt()
        except Exception as error:
            if not _is_disconnect(error):
                raise
        return attempt()

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self._all.clear()
        self._local = threading.local()


class Cursor:
    """Executes ``?``-style SQL inside an open transaction."""

    def __init__(self, conn: Any, *, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.postgres:
            with self.conn.cursor() as cur:
                cur.execute(self._sql(sql), params)
                return cur.rowcount
        return self.conn.execute(sql, params).rowcount

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self.postgres:
            with self.conn.cursor() as cur:
                cur.execute(self._sql(sql), params)
                return list(cur.fetchall())
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None


def _dict_factory(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _is_closed(conn: Any) -> bool:
    return bool(getattr(conn, "closed", False))


def _is_broken(conn: Any) -> bool:
    """A PostgreSQL connection that lost its server must be replaced, not reused."""
    return bool(getattr(conn, "broken", False) or getattr(conn, "closed", False))


def _is_disconnect(error: Exception) -> bool:
    if isinstance(error, sqlite3.Error):
        return False
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(error, psycopg.OperationalError)
