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

from adapters import open_service
from adapters.postgres import listen_forever
from adapters.sql import Cursor, ReadModelDatabase
from domain.event import Event
from domain.service import TicketingService
from projections import projector
from projections.projector import Rows
from projections.schema import TRACKING_TABLE
from projections.tables import RowStore

# How operators (and the fault tests) tell this LISTEN connection in pg_stat_activity.
LISTEN_APPLICATION_NAME = "ticketing-projector"

log = logging.getLogger("ticketing.projection")

LIVE = "read_models"
EVENT_TOPIC_PREFIX = Event.TOPIC + "."


@dataclass(frozen=True)
class Lag:
    position: int
    head: int
    events: int
    seconds: float


class ProjectionRunner:
    def __init__(
        self,
        database_url: str | None = None,
        *,
        service: TicketingService | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        settle_interval: float = 0.025,
        suffix: str = "",
        tracking_name: str = LIVE,
    ) -> None:
        self._owns_service = service is None
        self.service = service or open_service(database_url, pool_size=2)
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
    def process_available(self, max_batches: int | None = None) -> int:
        """Apply everything the store holds beyond the tracking position; returns the count.

        Once the runner is asked to stop, the batch in hand is finished and no other begun.
        """
        done = batches = 0
        while (max_batches is None or batches < max_batches) and not (
            batches and self._stop.is_set()
        ):
            with self.database.transaction(immediate=True) as cursor:
                applied = self.apply_batch(cursor)
            batches += 1
            done += applied
            if applied < self.batch_size:
                break  # the store had no more: no empty transaction just to find that out
        with self._caught_up:
            self._caught_up.notify_all()
        return done

    def apply_batch(self, cursor: Cursor, limit: int | None = None) -> int:
        """Inside the caller's transaction: apply one batch and advance the tracking position."""
        position = self.lock_position(cursor)
        notifications = self.service.recorder.select_notifications(
            position + 1, limit or self.batch_size
        )
        if not notifications:
            return 0
        mapper = self.service.mapper
        events = [
            mapper.to_domain_event(n)
            for n in notifications
            if n.topic.startswith(EVENT_TOPIC_PREFIX)
        ]
        events = [e for e in events if projector.is_ticketing_event(e)]
        store = RowStore(cursor, self.suffix)
        rows = Rows(store.load)
        keys: dict[str, list[Any]] = {}
        for domain_event in events:
            for table, table_keys in projector.referenced_keys(domain_event).items():
                keys.setdefault(table, []).extend(table_keys)
        for table, table_keys in keys.items():
            rows.prefetch(table, table_keys)
        for domain_event in events:
            projector.apply(rows, domain_event)
        for table in projector.PRIMARY_KEYS:
            store.upsert(table, rows.changed(table))
        self._save_position(cursor, notifications[-1].id)
        return len(notifications)

    def lock_position(self, cursor: Cursor) -> int:
        cursor.execute(
            f"INSERT INTO {TRACKING_TABLE} (name, position) VALUES (?, 0) "
            "ON CONFLICT (name) DO NOTHING",
            [self.tracking_name],
        )
        lock = " FOR UPDATE" if cursor.postgres else ""
        row = cursor.one(
            f"SELECT position FROM {TRACKING_TABLE} WHERE name = ?{lock}", [self.tracking_name]
        )
        return int(row["position"]) if row else 0

    def _save_position(self, cursor: Cursor, position: int) -> None:
        now: Any = datetime.now(UTC)
        cursor.execute(
            f"UPDATE {TRACKING_TABLE} SET position = ?, updated_at = ? WHERE name = ?",
            [position, now if cursor.postgres else now.isoformat(), self.tracking_name],
        )

    # ---------------------------------------------------------------- running
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> ProjectionRunner:
        """Run in background threads (embedded mode and ``ticketing project``)."""
        self._stop.clear()
        if self.wake not in self.service.after_append:
            self.service.after_append.append(self.wake)
        worker = threading.Thread(target=self.run_forever, name="projection", daemon=True)
        self._threads = [worker]
        if self.database.is_postgres:
            listener = threading.Thread(target=self._listen, name="projection-listen", daemon=True)
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
                    # (each about 15 statements and a commit to disk). In the on-sale, 25 ms
                    # instead of 10 cut the projector's CPU with its database backend's from
                    # 285 to 209 us per event; the lag p99 has stayed under the 250 ms goal in
                    # every on-sale run since (88-224 ms; 50 ms gave 251).
                    self._stop.wait(self.settle_interval)
                backoff = 0.1
            except Exception:
                log.exception("projection batch failed; resuming in %.1f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._wake.wait(self.poll_interval)

    def _listen(self) -> None:
        """Turn the store's NOTIFY into wake-ups; reconnect with backoff when the link drops."""
        listen_forever(
            self.database.db,
            self.service.recorder.channel_name,
            lambda _notify: self.wake(),
            self._stop,
            application_name=LISTEN_APPLICATION_NAME,
            logger=log,
            name="projection",
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
        if self.wake in self.service.after_append:
            self.service.after_append.remove(self.wake)
        self.database.close()
        if self._owns_service:
            self.service.close()

    # ------------------------------------------------------------------ lag
    def position(self) -> int:
        rows = self.database.query(
            f"SELECT position FROM {TRACKING_TABLE} WHERE name = ?", [self.tracking_name]
        )
        return int(rows[0]["position"]) if rows else 0

    def lag(self) -> Lag:
        return measure_lag(self.service, self.database, self.tracking_name)

    def wait_until_caught_up(self, timeout: float = 5.0) -> bool:
        """Block until the tracking position reaches the store's head as of this call."""
        head = self.service.recorder.max_notification_id() or 0
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
    service: TicketingService, database: ReadModelDatabase, tracking_name: str = LIVE
) -> Lag:
    """How far the read models trail the store: events, and the age of the oldest unapplied."""
    head = service.recorder.max_notification_id() or 0
    rows = database.query(f"SELECT position FROM {TRACKING_TABLE} WHERE name = ?", [tracking_name])
    position = int(rows[0]["position"]) if rows else 0
    seconds = 0.0
    if head > position:
        pending = service.recorder.select_notifications(position + 1, 1)
        if pending:
            oldest = service.mapper.to_domain_event(pending[0])
            seconds = max(0.0, (datetime.now(UTC) - oldest.timestamp).total_seconds())
    return Lag(position=position, head=head, events=max(0, head - position), seconds=seconds)
