"""The dispatcher: delivers the deliveries the outbox follower left pending.

Deliveries go by lane: each endpoint is one, and the mail server is one. A lane's due
deliveries are claimed together (``claims.claim``: leased, lowest position first) and
attempted one after another by one worker of a pool, so an endpoint receives its messages in
position order while they succeed (a failed one is retried later, after those behind it, and
``data.position`` lets the receiver order them), and a receiver that is slow or hangs holds
one worker at most: every other lane goes on. A lane whose first deliveries another
dispatcher holds (or one that died held) waits for that lease, so a second dispatcher on the
same store is safe (no delivery is attempted by two at once) and mostly takes other lanes.

Webhook attempts are recorded at the end of the claim (or every ``flush_seconds``, or at
once on a 410): a dispatcher killed before that delivers them again, under the same
``webhook-id``, which receivers de-duplicate by. A mail is recorded as sent right after the
server accepted it, before the next one, so a kill can repeat at most the one mail in
flight (with the same Message-ID). A claim is given back before its lease could run out
under an attempt, so no other dispatcher takes a delivery that is still being attempted.

Woken when a worker finishes (its lane may have more) and by a poll that looks for lanes
with deliveries due. Any failure (a lost database) is logged, and the loop goes on with
exponential backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.log_reader import LogReader, open_log
from adapters.sql import ReadModelDatabase
from projections.notifications import claims
from projections.notifications.claims import RETRY_DELAYS, Claim, Claimed, Lane, Outcome
from projections.notifications.mailer import Mailer
from projections.notifications.ssrf import UnsafeUrl
from projections.notifications.webhook_sender import WebhookSender

logger = logging.getLogger("ticketing.dispatcher")

# What an attempt may take beyond its timeout (connecting, recording): a claim keeps going
# only while its lease outlasts another attempt by this much.
ATTEMPT_MARGIN_SECONDS = 5.0


class Dispatcher:
    """Delivers the pending deliveries of the store ``database_url`` names: webhooks through
    ``sender``, mails through ``mailer`` (none: mail deliveries wait for a dispatcher that
    has one). ``head`` is the store's position (a 410 disables an endpoint from there); given
    none, it is read from the store's log on connections of its own."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        sender: WebhookSender,
        mailer: Mailer | None = None,
        head: Callable[[], int] | None = None,
        workers: int = 8,
        batch_size: int = 20,
        lease_seconds: float = 120.0,
        poll_interval: float = 0.25,
        flush_seconds: float = 1.0,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        longest = max([sender.timeout] + ([mailer.timeout] if mailer else []))
        if lease_seconds <= longest + ATTEMPT_MARGIN_SECONDS:
            raise ValueError(
                f"A claim's lease must outlast an attempt: more than "
                f"{longest + ATTEMPT_MARGIN_SECONDS:g} seconds."
            )
        self.database = ReadModelDatabase(database_url)
        self.sender = sender
        self.mailer = mailer
        self._own_log: LogReader | None = None
        if head is None:
            self._own_log = open_log(database_url, pool_size=1)
        self.head = head or self._store_head
        self.workers = workers
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_interval = poll_interval
        self.flush_seconds = flush_seconds
        self.retry_delays = tuple(retry_delays)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="dispatch")
        self._lock = threading.Lock()
        self._busy: set[Lane] = set()
        self._more: set[Lane] = set()  # lanes whose last claim was full: more may be due
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_look = 0.0

    # ---------------------------------------------------------------- running
    def start(self) -> Dispatcher:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="dispatcher", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def run_forever(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._wake.clear()
                self.dispatch_due()
                backoff = 0.1
            except Exception:
                logger.exception("dispatch round failed; resuming in %.1f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._wake.wait(self.poll_interval)

    def dispatch_due(self) -> int:
        """Hand due lanes to free workers; returns how many claims were handed."""
        with self._lock:
            free = self.workers - len(self._busy)
            if free <= 0:
                return 0
            lanes = [lane for lane in self._more if lane not in self._busy]
            self._more.clear()
        now = time.monotonic()
        if now >= self._next_look or not lanes:
            self._next_look = now + self.poll_interval
            with self.database.transaction() as cursor:
                due = claims.due_lanes(
                    cursor, _now(), self.mailer is not None, free + len(self._busy)
                )
            lanes += [lane for lane in due if lane not in lanes]
        handed = 0
        for lane in lanes:
            if handed >= free or self._stop.is_set():
                break
            with self._lock:
                if lane in self._busy:
                    continue
            with self.database.transaction(immediate=True) as cursor:
                claim = claims.claim(cursor, lane, _now(), self.lease, self.batch_size)
            if claim is None:
                continue
            with self._lock:
                self._busy.add(lane)
            self._pool.submit(self._run, claim)
            handed += 1
        return handed

    def stop(self, timeout: float = 15.0) -> None:
        """Finish the attempts in hand (a claim gives back what it has not attempted), then
        stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._pool.shutdown(wait=True)

    def close(self) -> None:
        self.stop()
        self.database.close()
        if self._own_log is not None:
            self._own_log.close()

    def _store_head(self) -> int:
        assert self._own_log is not None
        return self._own_log.recorder.max_notification_id() or 0

    def idle(self) -> bool:
        """Whether no claim is being worked on."""
        with self._lock:
            return not self._busy

    # ---------------------------------------------------------------- a claim
    def _run(self, claim: Claim) -> None:
        try:
            if claim.lane.is_email:
                self._mail(claim)
            else:
                self._post(claim)
        except Exception:
            logger.exception("delivering a claim of %d failed", len(claim.deliveries))
        finally:
            with self._lock:
                self._busy.discard(claim.lane)
                if len(claim.deliveries) >= self.batch_size:
                    self._more.add(claim.lane)
            self._wake.set()

    def _post(self, claim: Claim) -> None:
        try:
            endpoint = self.sender.open(claim.url or "", claim.secrets)
        except UnsafeUrl as refusal:
            refused = Outcome(False, error=f"refused: {refusal.message}")
            at = _now()
            self._record(claim, [(delivery, refused, at) for delivery in claim.deliveries])
            return
        done: list[tuple[Claimed, Outcome, datetime]] = []
        left = list(claim.deliveries)
        flushed = time.monotonic()
        try:
            while left and self._may_attempt(claim, self.sender.timeout):
                delivery = left.pop(0)
                outcome = endpoint.send(delivery.message_id, delivery.payload)
                done.append((delivery, outcome, _now()))
                if outcome.gone:
                    break  # the endpoint is disabled: the rest stay pending, held
                if time.monotonic() - flushed >= self.flush_seconds:
                    self._record(claim, done)
                    done, flushed = [], time.monotonic()
        finally:
            endpoint.close()
            self._record(claim, done)
            self._release(claim, left)

    def _mail(self, claim: Claim) -> None:
        assert self.mailer is not None  # a mail lane is claimed only with a mailer
        connection = self.mailer.open()
        left = list(claim.deliveries)
        try:
            while left and self._may_attempt(claim, self.mailer.timeout):
                delivery = left.pop(0)
                outcome = connection.send(delivery)
                # Recorded before the next mail: a kill repeats at most this one.
                self._record(claim, [(delivery, outcome, _now())])
        finally:
            connection.close()
            self._release(claim, left)

    def _may_attempt(self, claim: Claim, timeout: float) -> bool:
        if self._stop.is_set():
            return False
        remaining = (claim.leased_until - _now()).total_seconds()
        return remaining > timeout + ATTEMPT_MARGIN_SECONDS

    def _record(self, claim: Claim, done: list[tuple[Claimed, Outcome, datetime]]) -> None:
        if not done:
            return
        head = self.head() if any(outcome.gone for _, outcome, _ in done) else None
        with self.database.transaction(immediate=True) as cursor:
            held = claims.record(cursor, claim, done, self.retry_delays, head)
        if held < len(done):
            logger.warning(
                "%d attempt(s) not recorded: their lease had passed to another claim",
                len(done) - held,
            )

    def _release(self, claim: Claim, left: list[Claimed]) -> None:
        if left:
            with self.database.transaction(immediate=True) as cursor:
                claims.release(cursor, claim, left)


def _now() -> datetime:
    return datetime.now(UTC)


def open_dispatcher(
    database_url: str | None,
    *,
    allow_http: bool,
    allow_private: bool,
    smtp_url: str | None,
    mail_from: str,
    head: Callable[[], int] | None = None,
    **options: Any,
) -> Dispatcher:
    """A dispatcher under the notification settings (mail only with ``smtp_url``)."""
    return Dispatcher(
        database_url,
        sender=WebhookSender(allow_http=allow_http, allow_private=allow_private),
        mailer=Mailer(smtp_url, mail_from) if smtp_url else None,
        head=head,
        **options,
    )
