"""A migrated store (SQLite and PostgreSQL) for the notification tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import eventsourcing.domain
import pytest

from adapters import open_service
from api.composition import migrate
from domain.service import TicketingService
from tests.conftest import FAST_HASHING
from tests.projections.support import Clock


@pytest.fixture
def store(database_url: str) -> Iterator[TicketingService]:
    """The service on each store, with every table migrated (notifications included)."""
    migrate(database_url)
    service = open_service(database_url, **FAST_HASHING)
    yield service
    service.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Time that passes only when the test says: offers fall due without waiting."""
    moving = Clock(datetime.now(UTC))
    monkeypatch.setattr(eventsourcing.domain, "datetime_now_with_tzinfo", moving)
    return moving
