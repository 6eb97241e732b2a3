"""The write service, the read model and (in embedded mode) the projection runner of an app."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, current_app

from api import responselog
from api.config import PROJECTOR_EMBEDDED, Settings
from domain.service import TicketingService, open_service
from projections.queries import ReadModel
from projections.runner import ProjectionRunner
from projections.schema import migrate as migrate_read_models

EXTENSION_NAME = "ticketing"


def migrate(database_url: str, **service_settings: str) -> None:
    """Create the event store's and the read models' tables (idempotent)."""
    open_service(database_url, create_tables=True, **service_settings).close()
    migrate_read_models(database_url)
    responselog.migrate(database_url)


@dataclass
class Backend:
    settings: Settings
    service: TicketingService
    read_model: ReadModel
    runner: ProjectionRunner | None = None

    @property
    def response_log(self) -> responselog.ResponseLog:
        return responselog.ResponseLog(self.read_model.database)

    @classmethod
    def open(cls, settings: Settings) -> Backend:
        if settings.migrate_on_start:
            migrate(settings.database_url, **settings.service_settings)
        service = open_service(
            settings.database_url, pool_size=settings.db_pool_size, **settings.service_settings
        )
        runner = None
        if settings.projector == PROJECTOR_EMBEDDED:
            runner = ProjectionRunner(settings.database_url, service=service).start()
        return cls(settings, service, ReadModel(settings.database_url, service=service), runner)

    def catch_up(self, timeout: float = 5.0) -> bool:
        """Wait until the read models have applied everything stored so far.

        Used before a decision that reads the read models (which events a user holds), so
        that a write committed a moment ago is not missed.
        """
        if self.runner is not None:
            return self.runner.wait_until_caught_up(timeout)
        deadline = time.monotonic() + timeout
        while self.read_model.lag().events > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        self.read_model.close()
        self.service.close()


def backend() -> Backend:
    return current_app.extensions[EXTENSION_NAME]


def service() -> TicketingService:
    return backend().service


def reads() -> ReadModel:
    return backend().read_model


def settings() -> Settings:
    return backend().settings


def response_log() -> responselog.ResponseLog:
    return backend().response_log


def attach(app: Flask, opened: Backend) -> None:
    app.extensions[EXTENSION_NAME] = opened
