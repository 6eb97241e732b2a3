"""The PostgreSQL side of the write path: per-event turns, their connections, LISTEN loops."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from adapters.connection_stack import ConnectionStack
from adapters.database_url import Database
from adapters.group_commit import MAX_GROUPS, AppendCombiner, Seat
from adapters.turn_statements import TurnStatements
from domain.ports import Appended, Turn

LOCK_TIMEOUT_MS = 5000
# What the turns' NOTIFY says, so that listeners that follow accounts only can skip it (the
# library's own appends, accounts included, notify with no payload).
EVENT_APPEND_PAYLOAD = "ticketed-event"


class PostgresTurns:
    """One writer per ticketed event across processes; appends of different events that are
    ready together share one transaction (``adapters.group_commit``).

    Lanes already serialise an event's commands inside a process; this extends that to every
    process sharing the store, so the leaders of two API workers take turns instead of both
    deciding on the same version and one of them losing the append. A group of turns is one
    transaction on a connection of its own, in two round trips:

    1. ``BEGIN``, ``pg_advisory_xact_lock`` on each event of the group (one statement), in
       ascending key order (so two processes' groups can never wait on each other in a
       cycle), and one query for anything stored after each leader's cached version (so it
       fast-forwards without another query) or, for a leader with nothing cached, for its
       event's latest snapshot and the events after it (so it builds the aggregate without
       a read of its own: an event's first command in a process costs no library query);
    2. every deposited batch at once: ``LOCK TABLE`` (the same lock the eventsourcing
       library takes, so that notification ids commit in order), the look at the watched
       streams (``Watch``), ``INSERT ... RETURNING``, ``NOTIFY`` and ``COMMIT``, which also
       releases the events' locks.

    Every append takes that one table lock through its commit, so the store serialises on
    it: combining the events that are ready at the same moment takes it once for all of
    them, with one WAL flush and one NOTIFY. A group of one sends the statements of a lone
    turn (the same two round trips for a single event).

    Each round trip is one multi-statement query (parameters bound client side): about half
    the client's CPU per turn of the same statements sent as a psycopg pipeline, which
    matters twice, as the rest of the event's commands wait for a turn. The reads, the look
    at the watched streams and the insert in them are prepared once per connection
    (``adapters.turn_statements``), so the server plans none of them per turn.

    The locks live only as long as the transaction, so nothing can leak them. They are a
    fairness and efficiency device only: the events table's primary key still refuses a
    stale append (``IntegrityError``) and the loser decides again. In a group, such a refusal
    aborts every member's append; the one refused is named by the violation, the others
    are refused as well (nothing was stored) and each member tries again in a group of its
    own.
    """

    def __init__(self, db: Database, recorder: Any, max_groups: int = MAX_GROUPS) -> None:
        events = recorder.events_table_name
        self._sql = TurnStatements(
            events=events,
            # Under the library's naming (``prefix_purpose``), the snapshots beside the events.
            snapshots=events.removesuffix("_events") + "_snapshots",
            channel=recorder.channel_name,
            payload=EVENT_APPEND_PAYLOAD,
        )
        self._connections = ConnectionStack(
            db, max_groups, lock_timeout_ms=LOCK_TIMEOUT_MS, setup=self._sql.setup
        )
        self._combiner = AppendCombiner(self, max_groups)
        self.stats = self._combiner.stats

    def turn(self, aggregate_id: UUID, since: int | None) -> AbstractContextManager[Turn]:
        """Hold the event's lock until the turn's group commits (or the turn ends)."""
        return self._combiner.turn(aggregate_id, since)

    def begin(self, seats: list[Seat]) -> Any:
        try:
            conn = self._connections.acquire()
        except psycopg.OperationalError as error:
            raise OperationalError(str(error)) from error
        try:
            if len(seats) == 1:
                self._begin_alone(conn, seats[0])
            else:
                self._begin_together(conn, seats)
        except BaseException as error:
            self._connections.release(conn)
            if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
                # A lost connection is a transient store error: the batch is retried (the
                # server ends the transaction, and with it the locks).
                raise OperationalError(str(error)) from error
            raise
        return conn

    def _begin_alone(self, conn: Any, seat: Seat) -> None:
        if seat.since is None:
            self._begin_together(conn, [seat])
            return
        # Its own statement, so its snapshot comes after the lock: it sees every append the
        # lock's previous holder committed.
        found = conn.execute(self._sql.lock_and_catch_up, (seat.key, seat.aggregate_id, seat.since))
        found.nextset()
        found.nextset()
        seat.missing = [
            StoredEvent(seat.aggregate_id, version, topic, bytes(state))
            for version, topic, state in found.fetchall()
        ]

    def _begin_together(self, conn: Any, seats: list[Seat]) -> None:
        found = conn.execute(
            self._sql.lock_and_read,
            (
                _array({seat.key for seat in seats}),
                _array(seat.aggregate_id for seat in seats),
                _versions(seat.since for seat in seats),
            ),
        )
        found.nextset()
        found.nextset()
        by_id = {seat.aggregate_id: seat for seat in seats}
        for seat in seats:
            seat.missing = []
        for originator_id, is_snapshot, version, topic, state in found.fetchall():
            seat = by_id[originator_id]
            stored = StoredEvent(originator_id, version, topic, bytes(state))
            if is_snapshot:
                seat.snapshot = stored
            else:
                seat.missing.append(stored)

    def commit(self, conn: Any, seats: list[Seat], deposited: list[Seat]) -> None:
        try:
            if deposited:
                self._append_all(conn, deposited)
        except psycopg.IntegrityError as error:
            refused = _refused_event(error) if len(deposited) > 1 else None
            for seat in deposited:
                if refused is None or seat.aggregate_id == refused:
                    seat.fail(IntegrityError(str(error)))
                else:
                    seat.fail(IntegrityError(f"not appended: {refused}'s append was refused"))
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            # The commit's outcome is unknown, and the same for every member.
            for seat in deposited:
                seat.fail(OperationalError(str(error)))
        except Exception as error:
            for seat in deposited:
                seat.fail(error)
        finally:
            self._connections.release(conn)  # rolled back unless committed

    def _append_all(self, conn: Any, seats: list[Seat]) -> None:
        stored = [event for seat in seats for event in seat.batch or []]
        watches = [seat.watch for seat in seats if seat.watch is not None]
        results = conn.execute(
            self._sql.append,
            (
                _array({stream for watch in watches for stream in watch.ids}),
                _texts({watch.topic for watch in watches}),
                *_rows(stored),
            ),
        )
        results.nextset()
        watched = results.fetchall()
        results.nextset()
        positions = {(stream, version): position for stream, version, position in results}
        for seat in seats:
            seen: set[UUID] = set()
            if seat.watch is not None:
                ids, topic = set(seat.watch.ids), seat.watch.topic
                seen = {stream for stream, kind in watched if kind == topic and stream in ids}
            seat.appended = Appended(
                [positions[e.originator_id, e.originator_version] for e in seat.batch or []],
                seen,
            )

    def close(self) -> None:
        self._connections.close()


def _rows(stored: list[StoredEvent]) -> tuple[str, str, str, str]:
    """The four columns of ``stored`` as array literals, for ``unnest``."""
    return (
        _array(event.originator_id for event in stored),
        _array(event.originator_version for event in stored),
        _texts(event.topic for event in stored),
        "{" + ",".join(f'"\\\\x{event.state.hex()}"' for event in stored) + "}",
    )


def _array(values: Iterable[UUID | int]) -> str:
    """A PostgreSQL array literal of UUIDs or integers, cast by the statement. Spelled here
    rather than by psycopg's list adaptation, which costs a batch several times as much."""
    return "{" + ",".join(map(str, values)) + "}"


def _versions(values: Iterable[int | None]) -> str:
    """An array literal of versions, ``None`` (nothing cached) as NULL."""
    return "{" + ",".join("NULL" if value is None else str(value) for value in values) + "}"


def _texts(values: Iterable[str]) -> str:
    quoted = (value.replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{value}"' for value in quoted) + "}"


def _refused_event(error: psycopg.IntegrityError) -> UUID | None:
    """The event whose append the primary key refused, as the violation names it."""
    found = re.search(
        r"\(originator_id, originator_version\)=\(([0-9a-f-]{36}), ",
        str(error.diag.message_detail or ""),
    )
    return UUID(found[1]) if found else None


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
