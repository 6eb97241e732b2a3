"""An event's first command in a process builds the aggregate from its latest snapshot and
the events after it; on PostgreSQL from what the turn's first round trip read, with no read
of the library's, on both stores with the state a full replay gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from adapters import open_service
from domain.errors import EventNotFound
from domain.event import Event
from domain.service import TicketingService

ORGANIZER = "organizer"


def state_of(event: Event) -> dict[str, Any]:
    return {key: value for key, value in vars(event).items() if key != "_pending_events"}


def replayed(service: TicketingService, event_id: str) -> Event:
    """The aggregate rebuilt from every stored event, ignoring snapshots."""
    aggregate = None
    for domain_event in service.events.get(UUID(event_id)):
        aggregate = domain_event.mutate(aggregate)
    assert isinstance(aggregate, Event)
    return aggregate


@pytest.fixture
def writer(database_url: str) -> Iterator[TicketingService]:
    svc = open_service(database_url, create_tables=True, SNAPSHOT_INTERVAL="10")
    yield svc
    svc.close()


@pytest.fixture
def reader(database_url: str, writer: TicketingService) -> Iterator[TicketingService]:
    """A second process's service: nothing cached; counts the library's reads."""
    svc = open_service(database_url, SNAPSHOT_INTERVAL="10")
    svc.library_reads = []  # type: ignore[attr-defined]
    assert svc.snapshots is not None
    for recorder in (svc.recorder, svc.snapshots.recorder):
        select_events = recorder.select_events

        def spy(originator_id: Any, _select: Any = select_events, **kwargs: Any) -> Any:
            svc.library_reads.append(originator_id)  # type: ignore[attr-defined]
            return _select(originator_id, **kwargs)

        recorder.select_events = spy
    yield svc
    svc.close()


def test_a_cold_events_first_command_decides_on_its_snapshot_and_the_events_after_it(
    writer: TicketingService, reader: TicketingService, database_url: str
) -> None:
    event_id = writer.create_event(ORGANIZER, "Gig", total_tickets=10, max_tickets_per_user=2).id
    for n in range(24):
        writer.book(event_id, f"user{n}", 1 + n % 2)
    writer.cancel("user0", event_id=event_id)  # 27 versions, snapshots at 10 and 20
    assert writer.snapshots is not None
    assert [s.originator_version for s in writer.snapshots.get(UUID(event_id))] == [10, 20]
    stored = replayed(writer, event_id)

    outcome = reader.book(event_id, "late", 1)  # sold out: it joins the waiting list

    assert outcome.booking_id is None and outcome.waiting_list_id is not None
    cached = reader.lanes.lane(UUID(event_id)).aggregate
    assert cached is not None and cached.version == stored.version + 1
    assert state_of(cached) == state_of(replayed(writer, event_id))
    if database_url.startswith("postgresql"):
        assert reader.library_reads == []  # type: ignore[attr-defined]


def test_a_command_on_an_unknown_event_is_refused_on_a_cold_lane(
    reader: TicketingService,
) -> None:
    with pytest.raises(EventNotFound):
        reader.book("6f1c9a44-3f7e-4c55-9d0e-0a2b7c1e5d11", "someone", 1)


def test_a_command_on_the_id_of_another_aggregate_is_refused(
    writer: TicketingService, reader: TicketingService
) -> None:
    user_id = writer.accounts.register_user("alice", "a@example.com", "correct horse 9").id

    with pytest.raises(EventNotFound):
        reader.book(str(user_id), "someone", 1)
