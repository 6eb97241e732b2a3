"""One setting, ``DATABASE_URL``, chooses the event store.

``sqlite:///var/ticketing.db`` (the default) is an embedded file; ``postgresql://user@host:port/db``
is a server shared by several API workers and the projection process. This module turns the
URL into the eventsourcing library's environment; nothing else reads the URL's parts.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.credentials import CredentialVersions

DEFAULT_DATABASE_URL = "sqlite:///var/ticketing.db"

log = logging.getLogger("ticketing.persistence")


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
# What the turns' NOTIFY says, so that listeners that follow accounts only can skip it (the
# library's own appends, accounts included, notify with no payload).
EVENT_APPEND_PAYLOAD = "ticketed-event"


@dataclass(frozen=True)
class Watch:
    """Streams to look at as an append commits: which of them hold an event of ``topic``."""

    ids: list[UUID]
    topic: str


@dataclass(frozen=True)
class Appended:
    positions: Sequence[int]  # the notification ids of the appended events, in order
    watched: set[UUID]  # the watched streams holding an event of the watched topic


@dataclass
class Turn:
    """A leader's exclusive turn on one event's stream.

    ``missing`` holds the events stored after the leader's cached version (``None`` when the
    store cannot tell cheaply: the leader then catches up by itself). ``append`` stores a
    batch and, serialised with every other append, checks the watched streams: whatever
    committed before the batch is seen, whatever commits after it will see the batch.
    """

    missing: list[StoredEvent] | None
    append: Callable[..., Appended]


class PostgresTurns:
    """One writer per ticketed event across processes, in two round trips per batch.

    Lanes already serialise an event's commands inside a process; this extends that to every
    process sharing the store, so the leaders of two API workers take turns instead of both
    deciding on the same version and one of them losing the append. A turn is one
    transaction on a connection of its own, in two round trips:

    1. ``BEGIN``, ``pg_advisory_xact_lock`` on the event, and the query for anything stored
       after the leader's cached version (so it fast-forwards without another query);
    2. the batch: ``LOCK TABLE`` (the same lock the eventsourcing library takes, so that
       notification ids commit in order), the look at the watched streams (``Watch``),
       ``INSERT ... RETURNING``, ``NOTIFY`` and ``COMMIT``, which also releases the event's
       lock.

    Each round trip is one multi-statement query (parameters bound client side): about half
    the client's CPU per turn of the same statements sent as a psycopg pipeline (285 us
    against 528; the server, planning each statement anew, spends some 50 us more), which
    matters twice, as the rest of the event's commands wait for a turn.

    The lock lives only as long as the transaction, so nothing can leak it. It is a fairness
    and efficiency device only: the events table's primary key still refuses a stale append
    (``IntegrityError``) and the loser decides again. This is the one piece of SQL on the
    write side, kept here beside the rest of the persistence wiring.
    """

    def __init__(self, db: Database, recorder: Any, max_connections: int = 8) -> None:
        from psycopg import sql

        table = sql.Identifier(recorder.events_table_name)
        self._lock = "BEGIN; SELECT pg_advisory_xact_lock(%s)"
        catch_up = sql.SQL(
            "SELECT originator_version, topic, state FROM {} "
            "WHERE originator_id = %s AND originator_version > %s ORDER BY originator_version"
        ).format(table)
        # Rendered to plain strings once: psycopg renders a composed query on every execute.
        self._lock_and_catch_up = f"{self._lock}; {catch_up.as_string()}"
        self._append_batch = (
            sql.SQL(
                "LOCK TABLE {table} IN EXCLUSIVE MODE; "
                # Under the table lock: an append of a watched stream is either committed (seen
                # here) or waits for this commit (and its writer will see this batch).
                "SELECT DISTINCT originator_id FROM {table} "
                "WHERE originator_id = ANY(%s::uuid[]) AND topic = %s; "
                "INSERT INTO {table} (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[]) "
                "RETURNING originator_version, notification_id; "
                "NOTIFY {channel}, {payload}; "
                "COMMIT"
            )
            .format(
                table=table,
                channel=sql.Identifier(recorder.channel_name),
                payload=sql.Literal(EVENT_APPEND_PAYLOAD),
            )
            .as_string()
        )
        self._connections = ConnectionStack(db, max_connections)

    @contextmanager
    def turn(self, aggregate_id: UUID, since: int | None) -> Iterator[Turn]:
        """Hold the event's lock until the turn's append commits (or the turn ends)."""
        import psycopg
        from eventsourcing.persistence import IntegrityError, OperationalError

        key = int.from_bytes(aggregate_id.bytes[:8], "big", signed=True)
        try:
            with self._connections.connection() as conn:
                if since is None:
                    conn.execute(self._lock, (key,))
                    missing = None
                else:
                    # Its own statement, so its snapshot comes after the lock: it sees every append
                    # the lock's previous holder committed.
                    found = conn.execute(self._lock_and_catch_up, (key, aggregate_id, since))
                    found.nextset()
                    found.nextset()
                    missing = [
                        StoredEvent(aggregate_id, version, topic, bytes(state))
                        for version, topic, state in found.fetchall()
                    ]
                yield Turn(missing, lambda stored, watch=None: self._append(conn, stored, watch))
        except psycopg.IntegrityError as error:
            raise IntegrityError(str(error)) from error
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            # A lost connection is a transient store error: the batch is retried (the server
            # ends the transaction, and with it the lock).
            raise OperationalError(str(error)) from error

    def _append(self, conn: Any, stored: list[StoredEvent], watch: Watch | None) -> Appended:
        results = conn.execute(
            self._append_batch,
            (
                watch.ids if watch else [],
                watch.topic if watch else "",
                [event.originator_id for event in stored],
                [event.originator_version for event in stored],
                [event.topic for event in stored],
                [event.state for event in stored],
            ),
        )
        results.nextset()
        watched = {row[0] for row in results.fetchall()}
        results.nextset()
        positions = dict(results.fetchall())
        return Appended([positions[event.originator_version] for event in stored], watched)

    def close(self) -> None:
        self._connections.close()


class ConnectionStack:
    """At most ``size`` PostgreSQL connections for turns, the most recently used reused first.

    Autocommit, so that a turn's ``BEGIN`` and ``COMMIT`` are its own, and bound client side,
    so that one ``execute`` can carry several statements. A turn needs nothing of a
    connection pool but this bounded stack: psycopg_pool's checkout and return cost a turn
    about 90 us of CPU, as much as one of its round trips. A connection that comes back
    broken or inside a transaction it cannot roll back is closed, and the next turn opens
    a new one (after a server restart, each dead connection fails one attempt).
    """

    def __init__(self, db: Database, size: int, wait: float = 2.0) -> None:
        self._db = db
        self._idle: list[Any] = []
        self._slots = threading.BoundedSemaphore(size)
        self._open: set[Any] = set()
        self._mutex = threading.Lock()
        self._wait = wait  # longer without a free connection is a store error: retried

    @contextmanager
    def connection(self) -> Iterator[Any]:
        import psycopg

        if not self._slots.acquire(timeout=self._wait):
            raise psycopg.OperationalError("no connection for a turn became free in time")
        conn = None
        try:
            conn = self._idle.pop() if self._idle else self._connect()
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(
            self._db.conninfo(),
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
            connect_timeout=5,
            # A writer that stalls while holding an event's lock must not stall every other
            # process forever: waiting past this is a store error (retried, then 503).
            options=f"-c lock_timeout={LOCK_TIMEOUT_MS}",
        )
        with self._mutex:
            self._open.add(conn)
        return conn

    def _give_back(self, conn: Any) -> None:
        import psycopg

        if not conn.broken and not conn.closed:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                self._idle.append(conn)
                return
            try:
                conn.execute("ROLLBACK")  # the turn ended without an append: let go of the lock
                self._idle.append(conn)
                return
            except psycopg.Error:
                pass
        with self._mutex:
            self._open.discard(conn)
        conn.close()

    def close(self) -> None:
        with self._mutex:
            connections, self._open = list(self._open), set()
        self._idle.clear()
        for conn in connections:
            conn.close()


class RecorderTurns:
    """A single process (the embedded SQLite default) needs nothing beyond its lanes: the
    library's recorder appends, and its version check refuses a stale append."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder

    @contextmanager
    def turn(self, aggregate_id: UUID, since: int | None) -> Iterator[Turn]:
        yield Turn(None, self._append)

    def _append(self, stored: list[StoredEvent], watch: Watch | None = None) -> Appended:
        positions = self._recorder.insert_events(stored) or []
        # After the commit: SQLite serialises writers, so a watched append that commits
        # later will see this batch, and one that committed earlier is seen here.
        watched = set()
        for stream in watch.ids if watch else []:
            if any(e.topic == watch.topic for e in self._recorder.select_events(stream)):
                watched.add(stream)
        return Appended(positions, watched)

    def close(self) -> None:
        pass


class CredentialFollower:
    """Keeps a process's ``CredentialVersions`` current with every process's account changes.

    It reads the store's log, filtered to the credential topics, from where it left off: all
    of it when it starts, then whenever it is woken (PostgreSQL's LISTEN on the store's
    channel, by any append but a ticketed event's, at most every ``min_interval``) and every
    ``poll_interval`` in any case (SQLite, a lost connection). A change made in this process
    counts at once (``TicketingService.save``); one made elsewhere, within milliseconds.
    """

    BATCH = 1000

    def __init__(
        self,
        recorder: Any,
        credentials: CredentialVersions,
        db: Database,
        *,
        poll_interval: float = 1.0,
        min_interval: float = 0.05,
    ) -> None:
        self._recorder = recorder
        self._credentials = credentials
        self._db = db
        self.poll_interval = poll_interval
        self.min_interval = min_interval
        self.position = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def catch_up(self) -> None:
        """Fold every credential change stored up to now."""
        head = self._recorder.max_notification_id() or 0
        while self.position < head:
            # Notification ids commit in order (the appends' table lock), so everything up
            # to the head read above is visible, and the position can move to it even when
            # none of it is a credential change.
            found = self._recorder.select_notifications(
                self.position + 1, self.BATCH, stop=head, topics=self._credentials.TOPICS
            )
            for stored in found:
                self._credentials.record(
                    str(stored.originator_id), stored.originator_version, stored.topic
                )
            self.position = found[-1].id if len(found) == self.BATCH else head
        self._credentials.complete = True

    def start(self) -> CredentialFollower:
        try:
            self.catch_up()  # before the first request, so no token is judged on an empty map
        except Exception:  # noqa: BLE001 - the store is away: a worker still boots, and polls
            log.warning("reading the credential changes failed; retrying", exc_info=True)
        self._threads = [threading.Thread(target=self._follow, daemon=True, name="credentials")]
        if self._db.is_postgres:
            self._threads.append(
                threading.Thread(target=self._listen, daemon=True, name="credentials-listen")
            )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(2)

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            try:
                self.catch_up()
            except Exception:  # noqa: BLE001 - the store is away: the next poll retries
                log.warning("following credential changes failed; retrying", exc_info=True)
            self._stop.wait(self.min_interval)

    def _listen(self) -> None:
        def woken(notify: Any) -> None:
            if notify is None or notify.payload != EVENT_APPEND_PAYLOAD:  # an on-sale's appends
                self._wake.set()

        listen_forever(
            self._db,
            self._recorder.channel_name,
            woken,
            self._stop,
            application_name="ticketing-credentials",
            logger=log,
            name="credentials",
        )


def listen_forever(
    db: Database,
    channel: str,
    on_notify: Callable[[Any], None],
    stop: threading.Event,
    *,
    application_name: str,
    logger: logging.Logger,
    name: str,
) -> None:
    """Call ``on_notify`` with each NOTIFY on ``channel`` until ``stop``, and with ``None`` on
    every (re)connection (for anything appended while away); reconnect with backoff when
    the link drops. ``application_name`` tells the connection apart in pg_stat_activity."""
    import psycopg

    backoff = 0.1
    while not stop.is_set():
        try:
            with psycopg.connect(
                db.conninfo(),
                autocommit=True,
                connect_timeout=5,
                application_name=application_name,
            ) as conn:
                conn.execute(f'LISTEN "{channel}"')
                backoff = 0.1
                on_notify(None)
                while not stop.is_set():
                    for notify in conn.notifies(timeout=0.2, stop_after=1):
                        on_notify(notify)
        except Exception as error:  # noqa: BLE001 - logged, then reconnect
            logger.warning("%s LISTEN connection lost (%s); reconnecting", name, error)
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
