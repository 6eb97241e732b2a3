"""The projection runner: follows the store's notification log and applies each event once.

Exactly once: a batch's row changes and the new tracking position commit in one transaction
on the read-model database, and the batch starts by locking the tracking row, so a crash
replays from the last committed position and a second runner started by mistake waits for
the first instead of applying anything twice.

Woken by PostgreSQL's LISTEN/NOTIFY (the library's recorder notifies on every append), by the
in-process service after each save (embedded SQLite mode), or by a short poll as a fallback.
Any failure (a lost connection, a handler error) is logged, and the loop resumes from the
tracking position with exponential backoff: the library's own ``run_forever`` would stop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.log_reader import LogReader, StoreLog, open_log
from adapters.postgres import listen_forever
from adapters.sql import Cursor, ReadModelDatabase
from domain.event import Event
from projections import projector, tracking
from projections.projector import Rows
from projections.row_store import RowStore
from projections.tables import READ_MODELS, Table

# How operators (and the fault tests) tell this LISTEN connection in pg_stat_activity.
LISTEN_APPLICATION_NAME = "ticketing-projector"

logger = logging.getLogger("ticketing.projection")

EVENT_TOPIC_PREFIX = Event.TOPIC + "."


@dataclass(frozen=True)
class Lag:
    position: int
    head: int
    events: int
    seconds: float


class ProjectionRunner:
    """Follows the store's ``log``, or, given none, the log of the store ``database_url``
    names, read through connections of its own.

    Appends by a service in this process wake it through ``wake`` (its owner wires that).
    Other followers of the log with the same discipline (the outbox) subclass it and apply
    their own batch under their own ``tracking_name``.
    """

    # Its threads' names, its logger, and how its LISTEN connection shows in pg_stat_activity.
    name = "projection"
    logger = logger
    listen_application_name = LISTEN_APPLICATION_NAME

    def __init__(
        self,
        database_url: str | None = None,
        *,
        log: StoreLog | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        settle_interval: float = 0.025,
        suffix: str = "",
        tracking_name: str = tracking.LIVE,
    ) -> None:
        self._own_log: LogReader | None = None
        if log is None:
            log = self._own_log = open_log(database_url)
        self.log = log
        self.database = ReadModelDatabase(database_url)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.settle_interval = settle_interval
        self.suffix = suffix
        self.tracking_name = tracking_name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._caught_up = threading.Condition()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------- processing
    def process_available(self) -> int:
        """Apply everything the store holds beyond the tracking position; returns the count.

        Once the runner is asked to stop, the batch in hand is finished and no other begun.
        """
        done = batches = 0
        while not (batches and self._stop.is_set()):
            with self.database.transaction(immediate=True) as cursor:
                applied = self.apply_batch(cursor)
            batches += 1
            done += applied
            if applied < self.batch_size:
                break  # the store had no more: no empty transaction just to find that out
        with self._caught_up:
            self._caught_up.notify_all()
        return done

    def apply_batch(self, cursor: Cursor) -> int:
        """Inside the caller's transaction: apply one batch and advance the tracking position."""
        position = tracking.lock(cursor, self.tracking_name)
        notifications = self.log.recorder.select_notifications(position + 1, self.batch_size)
        if not notifications:
            return 0
        mapper = self.log.mapper
        events = [
            mapper.to_domain_event(n)
            for n in notifications
            if n.topic.startswith(EVENT_TOPIC_PREFIX)
        ]
        events = [e for e in events if projector.is_ticketing_event(e)]
        store = RowStore(cursor, self.suffix)
        rows = Rows(store.load)
        keys: dict[Table, list[Any]] = {}
        for domain_event in events:
            for table, table_keys in projector.referenced_keys(domain_event).items():
                keys.setdefault(table, []).extend(table_keys)
        for table, table_keys in keys.items():
            rows.prefetch(table, table_keys)
        for domain_event in events:
            projector.apply(rows, domain_event)
        for table in READ_MODELS:
            store.upsert(table, rows.changed(table))
        tracking.save(cursor, self.tracking_name, notifications[-1].id)
        return len(notifications)

    # ---------------------------------------------------------------- running
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> ProjectionRunner:
        """Run in background threads (embedded mode and ``ticketing project``)."""
        self._stop.clear()
        worker = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
        self._threads = [worker]
        if self.database.is_postgres:
            listener = threading.Thread(
                target=self._listen, name=f"{self.name}-listen", daemon=True
            )
            self._threads.append(listener)
        for thread in self._threads:
            thread.start()
        return self

    def run_forever(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._wake.clear()
                if self.process_available() and self.settle_interval:
                    # Under a stream of appends, let more arrive: fewer, larger transactions
                    # (each a dozen or so statements and a commit to disk) cost less CPU per
                    # event, and the wait stays well inside the lag goal (docs/performance.md).
                    self._stop.wait(self.settle_interval)
                backoff = 0.1
            except Exception:
                self.logger.exception("%s batch failed; resuming in %.1f s", self.name, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._wake.wait(self.poll_interval)

    def _listen(self) -> None:
        """Turn the store's NOTIFY into wake-ups; reconnect with backoff when the link drops."""
        listen_forever(
            self.database.db,
            self.log.recorder.channel_name,
            lambda _notify: self.wake(),
            self._stop,
            application_name=self.listen_application_name,
            logger=self.logger,
            name=self.name,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the current batch, then stop."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def close(self) -> None:
        self.stop()
        self.database.close()
        if self._own_log is not None:
            self._own_log.close()

    # ------------------------------------------------------------------ lag
    def position(self) -> int:
        return tracking.position(self.database, self.tracking_name)

    def lag(self) -> Lag:
        return measure_lag(self.log, self.database, self.tracking_name)

    def wait_until_caught_up(self, timeout: float = 5.0) -> bool:
        """Block until the tracking position reaches the store's head as of this call."""
        head = self.log.recorder.max_notification_id() or 0
        deadline = time.monotonic() + timeout
        while self.position() < head:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wake()
            with self._caught_up:
                self._caught_up.wait(min(remaining, 0.05))
        return True


def measure_lag(
    log: StoreLog, database: ReadModelDatabase, tracking_name: str = tracking.LIVE
) -> Lag:
    """How far the read models trail the store: events, and the age of the oldest unapplied."""
    head = log.recorder.max_notification_id() or 0
    position = tracking.position(database, tracking_name)
    seconds = 0.0
    if head > position:
        pending = log.recorder.select_notifications(position + 1, 1)
        if pending:
            oldest = log.mapper.to_domain_event(pending[0])
            seconds = max(0.0, (datetime.now(UTC) - oldest.timestamp).total_seconds())
    return Lag(position=position, head=head, events=max(0, head - position), seconds=seconds)
