"""The deadline follower: turns the open offers' deadlines into ``settle_due_offers`` commands.

It follows the store's notification log like the projection runner and keeps one row per
open offer in ``offer_deadlines`` (inserted on ``OfferMade``, deleted on ``OfferAccepted``,
``OfferDeclined`` and ``OfferExpired``). A batch's rows and the new tracking position commit
in one transaction, after locking its tracking row: the deadlines are rebuilt from the log,
not held in memory, a crash resumes exactly where the last commit left it, and a second
follower started by mistake waits for the first instead of applying anything twice.

At each deadline it calls the write service's ``settle_due_offers(event_id)``. The aggregate
expires only what its own clock says is due, and an offer expires once, so an early, late or
repeated call (two followers, a restart) is harmless: the follower never decides an expiry
itself. Every command on an event settles its due offers first anyway, so the rules never
wait on this process; it makes expiry happen when nobody calls.

Woken by appends (PostgreSQL's NOTIFY; in embedded mode the in-process service's
``after_append``), at the next deadline, and by a poll as a fallback. Any failure (a lost
connection, a busy event) is logged, and the loop resumes with exponential backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from adapters.log_reader import LogReader, StoreLog, open_log
from adapters.postgres import listen_forever
from adapters.sql import Cursor, ReadModelDatabase
from domain.event import Event, now
from projections import tracking
from projections.schema import create_statement, index_statements
from projections.tables import OFFER_DEADLINES

TRACKING_NAME = "offer_deadlines"
# How operators (and the fault tests) tell this LISTEN connection in pg_stat_activity.
LISTEN_APPLICATION_NAME = "ticketing-offer-deadlines"

OFFER_MADE = f"{Event.TOPIC}.OfferMade"
OFFER_CLOSED = tuple(
    f"{Event.TOPIC}.{name}" for name in ("OfferAccepted", "OfferDeclined", "OfferExpired")
)
OFFER_TOPICS = (OFFER_MADE, *OFFER_CLOSED)
CHUNK = 400  # ids per DELETE, far below SQLite's limit on variables
# Woken a moment after a deadline rather than at it: a timer may fire a hair early, and the
# aggregate expires an offer only once its deadline has passed.
PAST_DEADLINE_SECONDS = 0.001

logger = logging.getLogger("ticketing.offer_deadlines")


class Settler(Protocol):
    """The one command the follower gives: the write service provides it."""

    def settle_due_offers(self, event_id: str) -> list[str]: ...


@dataclass(frozen=True)
class DeadlineStatus:
    """Where the follower stands: its log position and the deadlines it knows of."""

    position: int
    head: int
    events: int  # stored events it has not read yet
    open_offers: int
    next_deadline: datetime | None
    overdue_seconds: float  # how far past its deadline the earliest open offer is (0: none)


def migrate(database_url: str | None = None) -> None:
    """Create the deadlines table and the tracking table if missing (idempotent). The
    follower starts at the log's beginning: offers made before it existed have deadlines."""
    database = ReadModelDatabase(database_url)
    try:
        with database.transaction(immediate=True) as cursor:
            if database.is_postgres:
                # Serialise concurrent migrations (several workers starting at once).
                cursor.execute("SELECT pg_advisory_xact_lock(727403)")
            cursor.execute(create_statement(OFFER_DEADLINES, database.is_postgres))
            for statement in index_statements(tables=(OFFER_DEADLINES,)):
                cursor.execute(statement)
            tracking.create_table(cursor)
    finally:
        database.close()


class OfferDeadlineFollower:
    """Follows the store's ``log`` (or, given none, the log of the store ``database_url``
    names, on connections of its own) and settles due offers through ``service``.

    Appends by a service in this process wake it through ``wake`` (its owner wires that).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        service: Settler,
        log: StoreLog | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        gather_interval: float = 0.1,
        settle_threads: int = 4,
        tracking_name: str = TRACKING_NAME,
    ) -> None:
        self._own_log: LogReader | None = None
        if log is None:
            log = self._own_log = open_log(database_url)
        self.log = log
        self.service = service
        self.database = ReadModelDatabase(database_url)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.gather_interval = gather_interval
        self.tracking_name = tracking_name
        # Events due together are settled side by side, so the store-wide group commit can
        # append them in one transaction instead of one after the other.
        self._settlers = ThreadPoolExecutor(settle_threads, thread_name_prefix="offer-settle")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------- the log
    def process_available(self) -> int:
        """Apply every offer event stored beyond the tracking position; returns their count.

        Once the follower is asked to stop, the batch in hand is finished and no other begun.
        """
        if self.position() >= (self.log.recorder.max_notification_id() or 0):
            return 0  # nothing new: no write transaction (on SQLite, the file's one write lock)
        done = batches = 0
        while not (batches and self._stop.is_set()):
            with self.database.transaction(immediate=True) as cursor:
                applied, more = self.apply_batch(cursor)
            batches += 1
            done += applied
            if not more:
                break
        return done

    def apply_batch(self, cursor: Cursor) -> tuple[int, bool]:
        """Inside the caller's transaction: apply one batch of offer events and advance the
        tracking position; (offer events applied, whether more may be stored)."""
        position = tracking.lock(cursor, self.tracking_name)
        head = self.log.recorder.max_notification_id() or 0
        if head <= position:
            return 0, False
        # Only the offer events cross the wire; the position still moves past the rest.
        notifications = self.log.recorder.select_notifications(
            position + 1, self.batch_size, stop=head, topics=OFFER_TOPICS
        )
        more = len(notifications) == self.batch_size
        made: dict[str, tuple[str, datetime]] = {}
        closed: list[str] = []
        for notification in notifications:
            domain_event: Any = self.log.mapper.to_domain_event(notification)
            if notification.topic == OFFER_MADE:
                expires_at = datetime.fromisoformat(domain_event.expires_at)
                made[domain_event.offer_id] = (str(domain_event.originator_id), expires_at)
            elif made.pop(domain_event.offer_id, None) is None:
                closed.append(domain_event.offer_id)
        postgres = cursor.postgres
        for start in range(0, len(closed), CHUNK):
            chunk = closed[start : start + CHUNK]
            cursor.execute(
                f"DELETE FROM {OFFER_DEADLINES.name} "
                f"WHERE offer_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
        for offer_id, (event_id, expires_at) in made.items():
            cursor.execute(
                f"INSERT INTO {OFFER_DEADLINES.name} (offer_id, event_id, expires_at) "
                "VALUES (?, ?, ?) ON CONFLICT (offer_id) DO NOTHING",
                [offer_id, event_id, _stored(expires_at, postgres)],
            )
        tracking.save(cursor, self.tracking_name, notifications[-1].id if more else head)
        return len(notifications), more

    # ---------------------------------------------------------- deadlines
    def settle_due(self) -> list[str]:
        """Ask the service to settle every event with a deadline that has passed, the most
        overdue first; the ids of the offers expired.

        An event whose settling fails is logged and tried again next round; only when every
        one failed does the failure reach the loop (and its backoff).
        """
        moment = now()
        due = self.database.query(
            f"SELECT event_id, MIN(expires_at) AS due FROM {OFFER_DEADLINES.name} "
            "WHERE expires_at <= ? GROUP BY event_id ORDER BY due",
            [_stored(moment, self.database.is_postgres)],
        )
        results = list(self._settlers.map(self._settle, [row["event_id"] for row in due]))
        failures = [result for result in results if isinstance(result, Exception)]
        if failures and len(failures) == len(results):
            raise failures[0]
        return [offer_id for result in results if isinstance(result, list) for offer_id in result]

    def _settle(self, event_id: str) -> list[str] | Exception:
        try:
            return self.service.settle_due_offers(event_id)
        except Exception as error:  # noqa: BLE001 - one event's failure must not stop the rest
            logger.warning("settling the due offers of %s failed: %r", event_id, error)
            return error

    def run_once(self) -> float:
        """One round: read the log, settle what is due; the seconds to wait before the next."""
        self.process_available()
        if self.settle_due():
            return 0.0  # their OfferExpired (and the offers they made) are in the log: read
        upcoming = self.database.query(
            f"SELECT MIN(expires_at) AS next_deadline FROM {OFFER_DEADLINES.name} "
            "WHERE expires_at > ?",
            [_stored(now(), self.database.is_postgres)],
        )
        next_deadline = _moment(upcoming[0]["next_deadline"]) if upcoming else None
        if next_deadline is None:
            return self.poll_interval
        until = (next_deadline - now()).total_seconds() + PAST_DEADLINE_SECONDS
        return max(0.0, min(self.poll_interval, until))

    # ------------------------------------------------------------- running
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> OfferDeadlineFollower:
        """Run in background threads (embedded mode and ``ticketing expire-offers``)."""
        self._stop.clear()
        worker = threading.Thread(target=self.run_forever, name="offer-deadlines", daemon=True)
        self._threads = [worker]
        if self.database.is_postgres:
            listener = threading.Thread(
                target=self._listen, name="offer-deadlines-listen", daemon=True
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
                wait = self.run_once()
                backoff = 0.1
            except Exception:
                logger.exception("offer deadline round failed; resuming in %.1f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if not wait:
                continue
            until = time.monotonic() + wait
            if self._wake.wait(wait) and self.gather_interval:
                # Woken by an append: during an on-sale they come in streams, and a deadline
                # is at least a minute away when its offer is made, so reading the log a
                # moment later costs nothing while reading it after every append costs a
                # transaction each. A deadline due meanwhile is not kept waiting.
                self._stop.wait(max(0.0, min(self.gather_interval, until - time.monotonic())))

    def _listen(self) -> None:
        """Turn the store's NOTIFY into wake-ups; reconnect with backoff when the link drops."""
        listen_forever(
            self.database.db,
            self.log.recorder.channel_name,
            lambda _notify: self.wake(),
            self._stop,
            application_name=LISTEN_APPLICATION_NAME,
            logger=logger,
            name="offer deadlines",
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the current round, then stop."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def close(self) -> None:
        self.stop()
        self._settlers.shutdown(wait=True)
        self.database.close()
        if self._own_log is not None:
            self._own_log.close()

    # -------------------------------------------------------------- status
    def position(self) -> int:
        return tracking.position(self.database, self.tracking_name)

    def status(self) -> DeadlineStatus:
        return deadline_status(self.log, self.database, self.tracking_name)


def deadline_status(
    log: StoreLog, database: ReadModelDatabase, tracking_name: str = TRACKING_NAME
) -> DeadlineStatus:
    """How far the follower trails the log, and how overdue the earliest open offer is (it
    grows while the follower is down or behind; a few milliseconds when it keeps up)."""
    head = log.recorder.max_notification_id() or 0
    position = tracking.position(database, tracking_name)
    [row] = database.query(
        f"SELECT COUNT(*) AS open_offers, MIN(expires_at) AS next_deadline "
        f"FROM {OFFER_DEADLINES.name}"
    )
    next_deadline = _moment(row["next_deadline"])
    overdue = 0.0
    if next_deadline is not None:
        overdue = max(0.0, (now() - next_deadline).total_seconds())
    return DeadlineStatus(
        position=position,
        head=head,
        events=max(0, head - position),
        open_offers=int(row["open_offers"]),
        next_deadline=next_deadline,
        overdue_seconds=overdue,
    )


def _stored(moment: datetime, postgres: bool) -> Any:
    """A moment as the table holds it: a timestamp on PostgreSQL; on SQLite UTC text of one
    fixed shape, so that text order is time order."""
    if postgres:
        return moment
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _moment(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
