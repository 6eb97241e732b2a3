"""A migrated store for the projection tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import eventsourcing.domain
import pytest

from adapters import open_service
from domain.service import TicketingService
from projections.schema import migrate
from tests.conftest import FAST_HASHING
from tests.projections.support import Clock


def migrated_service(database_url: str) -> Iterator[TicketingService]:
    service = open_service(database_url, create_tables=True, **FAST_HASHING)
    migrate(database_url)
    yield service
    service.close()


@pytest.fixture
def store(database_url: str) -> Iterator[TicketingService]:
    """The service on each store (SQLite and PostgreSQL), its read models migrated."""
    yield from migrated_service(database_url)


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[TicketingService]:
    yield from migrated_service(postgres_url)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Time that passes only when the test says: offers fall due without waiting."""
    moving = Clock(datetime.now(UTC))
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", moving)
    return moving
