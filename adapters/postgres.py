"""The PostgreSQL side of the write path: per-event turns, their connections, LISTEN loops."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from psycopg import sql

from adapters.database_url import Database
from domain.ports import Appended, Turn, Watch

LOCK_TIMEOUT_MS = 5000
# What the turns' NOTIFY says, so that listeners that follow accounts only can skip it (the
# library's own appends, accounts included, notify with no payload).
EVENT_APPEND_PAYLOAD = "ticketed-event"


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
    about as much CPU as one of its round trips. A connection that comes back broken or
    inside a transaction it cannot roll back is closed, and the next turn opens a new one
    (after a server restart, each dead connection fails one attempt).

    Threads waiting for a connection get it first come, first served: a freed slot is
    handed to the longest waiter. A plain semaphore lets the thread that frees a slot take
    it straight back (it still holds the GIL when the waiter wakes), so a few threads
    cycled through the connections while the rest waited out ``wait``.
    """

    def __init__(self, db: Database, size: int, wait: float = 2.0) -> None:
        self._db = db
        self._idle: list[Any] = []
        self._free_slots = size
        self._waiters: deque[threading.Lock] = deque()  # each held until its slot is handed
        self._open: set[Any] = set()
        self._mutex = threading.Lock()
        self._wait = wait  # longer without a free connection is a store error: retried

    @contextmanager
    def connection(self) -> Iterator[Any]:
        conn = self.acquire()
        try:
            yield conn
        finally:
            self.release(conn)

    def acquire(self) -> Any:
        """A connection of the stack's (``release`` it, from any thread)."""
        self._take_slot()
        try:
            try:
                return self._idle.pop()
            except IndexError:
                return self._connect()
        except BaseException:
            self._free_slot()
            raise

    def release(self, conn: Any) -> None:
        try:
            self._give_back(conn)
        finally:
            self._free_slot()

    def _take_slot(self) -> None:
        with self._mutex:
            if self._free_slots and not self._waiters:
                self._free_slots -= 1
                return
            handed = threading.Lock()
            handed.acquire()
            self._waiters.append(handed)
        if handed.acquire(timeout=self._wait):
            return
        with self._mutex:
            try:
                self._waiters.remove(handed)
            except ValueError:
                return  # handed over just as the wait ran out: the slot is ours
        raise psycopg.OperationalError("no connection for a turn became free in time")

    def _free_slot(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free_slots += 1

    def _connect(self) -> Any:

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
