"""The turns' PostgreSQL connections: few, reused, handed out first come, first served."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from adapters.database_url import Database


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

    def __init__(
        self,
        db: Database,
        size: int,
        wait: float = 2.0,
        lock_timeout_ms: int | None = None,
        setup: str | None = None,
    ) -> None:
        self._db = db
        self._setup = setup  # run once on each new connection (prepared statements)
        # A writer that stalls while holding an event's lock must not stall every other
        # process forever: waiting past this is a store error (retried, then 503).
        self._options = f"-c lock_timeout={lock_timeout_ms}" if lock_timeout_ms else ""
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
            options=self._options,
        )
        if self._setup:
            try:
                conn.execute(self._setup)
            except BaseException:
                conn.close()
                raise
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
