"""Following every process's account changes from the store."""

from __future__ import annotations

import logging
import threading
from typing import Any

from adapters.database_url import Database
from adapters.postgres import EVENT_APPEND_PAYLOAD, listen_forever
from domain.credentials import CredentialVersions

log = logging.getLogger("ticketing.persistence")


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
