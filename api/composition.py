"""The composition root of an app: its settings, the write service, the read model, the
credential follower and (in embedded mode) the projection runner, the offer deadline
follower, the outbox follower and the dispatcher, opened together and reached by the views
through the accessors below."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, current_app

from adapters import open_service
from adapters.credentials import CredentialFollower
from adapters.database_url import parse_database_url
from api.config import PROJECTOR_EMBEDDED, Settings
from api.idempotency_store import IdempotencyStore
from api.idempotency_store import migrate as migrate_idempotency_store
from domain.errors import ServiceBusy
from domain.service import TicketingService
from projections import offer_deadlines
from projections.notifications import schema as notifications_schema
from projections.notifications.dispatcher import Dispatcher, open_dispatcher
from projections.notifications.outbox import OutboxFollower
from projections.notifications.subscriptions import Webhooks
from projections.offer_deadlines import OfferDeadlineFollower
from projections.queries import ReadModel
from projections.runner import ProjectionRunner
from projections.schema import migrate as migrate_read_models

EXTENSION_NAME = "ticketing"


def migrate(database_url: str) -> None:
    """Create the event store's and the read models' tables (idempotent)."""
    open_service(database_url, create_tables=True).close()
    migrate_read_models(database_url)
    offer_deadlines.migrate(database_url)
    notifications_schema.migrate(database_url)
    migrate_idempotency_store(database_url)


@dataclass
class Components:
    settings: Settings
    service: TicketingService
    read_model: ReadModel
    runner: ProjectionRunner | None = None
    credentials: CredentialFollower | None = None
    deadlines: OfferDeadlineFollower | None = None
    outbox: OutboxFollower | None = None
    dispatcher: Dispatcher | None = None

    @property
    def idempotency_store(self) -> IdempotencyStore:
        return IdempotencyStore(self.read_model.database)

    @property
    def webhooks(self) -> Webhooks:
        return Webhooks(self.read_model.database, self._store_head)

    def _store_head(self) -> int:
        return self.service.recorder.max_notification_id() or 0

    @classmethod
    def open(cls, settings: Settings) -> Components:
        if settings.migrate_on_start:
            migrate(settings.database_url)
        service = open_service(
            settings.database_url, pool_size=settings.db_pool_size, settings=settings.service
        )
        runner = deadlines = outbox = dispatcher = None
        if settings.projector == PROJECTOR_EMBEDDED:
            # The runner reads the log through a store connection pool of its own. A batch
            # holds the read models' write lock (on SQLite, the one file's) while it reads
            # the log; through the requests' pool that read queued behind a writer that
            # waited for that very lock, and both waited out their timeouts.
            runner = ProjectionRunner(settings.database_url).start()
            service.after_append.append(runner.wake)
            # The followers run where the projector does: here with one process, else each
            # its own (``ticketing expire-offers``). It settles through this service's lanes.
            deadlines = OfferDeadlineFollower(settings.database_url, service=service).start()
            service.after_append.append(deadlines.wake)
            # Else ``ticketing notify``; its own store connections, as the runner's.
            outbox = OutboxFollower(settings.database_url, mail=settings.notifications.mail).start()
            service.after_append.append(outbox.wake)
            # Delivers what the outbox made (else ``ticketing dispatch``); it looks for due
            # deliveries by a short poll, as the outbox commits them after the append.
            notifications = settings.notifications
            dispatcher = open_dispatcher(
                settings.database_url,
                allow_http=notifications.allow_http,
                allow_private=notifications.allow_private,
                smtp_url=notifications.smtp_url,
                mail_from=notifications.mail_from,
                head=lambda: service.recorder.max_notification_id() or 0,
            ).start()
        credentials = CredentialFollower(
            service.recorder, service.credentials, parse_database_url(settings.database_url)
        ).start()
        return cls(
            settings,
            service,
            ReadModel(settings.database_url, log=service),
            runner,
            credentials,
            deadlines,
            outbox,
            dispatcher,
        )

    def catch_up(self, timeout: float = 5.0) -> None:
        """Wait until the read models have applied everything stored as of this call.

        Used before a decision that reads the read models (which events a user holds), so
        that a write committed a moment ago is not missed. Raises ``ServiceBusy`` (503) when
        the projection does not get there in time: deciding on stale rows would be wrong.
        """
        if self.runner is not None:
            caught_up = self.runner.wait_until_caught_up(timeout)
        else:
            head = self.service.recorder.max_notification_id() or 0
            deadline = time.monotonic() + timeout
            while (caught_up := self.read_model.lag().position >= head) is False:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        if not caught_up:
            raise ServiceBusy("The read models are catching up; please retry shortly.")

    def close(self) -> None:
        if self.credentials is not None:
            self.credentials.stop()
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.outbox is not None:
            self.outbox.close()
        if self.deadlines is not None:
            self.deadlines.close()
        if self.runner is not None:
            self.runner.close()
        self.read_model.close()
        self.service.close()


def components() -> Components:
    return current_app.extensions[EXTENSION_NAME]


def service() -> TicketingService:
    return components().service


def reads() -> ReadModel:
    return components().read_model


def settings() -> Settings:
    return components().settings


def idempotency_store() -> IdempotencyStore:
    return components().idempotency_store


def webhooks() -> Webhooks:
    return components().webhooks


def attach(app: Flask, opened: Components) -> None:
    app.extensions[EXTENSION_NAME] = opened
