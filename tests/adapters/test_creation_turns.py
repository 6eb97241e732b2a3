"""A new event appended through a turn, on both stores: stored, combined with the appends
ready at the same moment, refused for a taken id, retried when another member's append was
refused, and kept in its lane so that its first command builds nothing from the store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from adapters.database_url import eventsourcing_env, parse_database_url
from adapters.postgres import PostgresTurns
from adapters.sqlite import RecorderTurns
from domain.errors import ServiceBusy
from domain.event import Event
from domain.lanes import Lanes
from domain.ports import Turn
from domain.service import TicketingService
from domain.views import EventView
from tests.adapters.grouping import wait_for


@pytest.fixture
def service(database_url: str) -> Iterator[TicketingService]:
    """The service with one group in flight at a time, so a held turn makes others queue."""
    db = parse_database_url(database_url)
    env = eventsourcing_env(db, create_tables=True)
    if db.is_postgres:
        svc = TicketingService(env, turns=lambda recorder: PostgresTurns(db, recorder, 1))
    else:
        svc = TicketingService(env, turns=lambda recorder: RecorderTurns(recorder, 1))
    yield svc
    svc.close()


def new_event(name: str = "Gala", tickets: int = 5) -> Event:
    return Event(
        id=uuid4(), name=name, total_tickets=tickets, max_tickets_per_user=1, organizer_id="o"
    )


def queued(service: TicketingService, *runs: Callable[[], Any]) -> list[Any]:
    """Run each callable in a thread of its own, all queued (in the given order) behind a
    turn that holds the only group slot; returns what each returned or raised."""
    outcomes: list[Any] = [None] * len(runs)
    holding, let_go = threading.Event(), threading.Event()
    combiner = service.turns._combiner  # type: ignore[attr-defined]

    def hold() -> None:
        with service.turns.turn(uuid4(), None):
            holding.set()
            let_go.wait()

    def run(index: int, body: Callable[[], Any]) -> None:
        try:
            outcomes[index] = body()
        except BaseException as error:  # noqa: BLE001 - the test looks at it
            outcomes[index] = error

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    holding.wait()
    for index, body in enumerate(runs):
        threads.append(threading.Thread(target=run, args=(index, body)))
        threads[-1].start()
        wait_for(lambda count=index + 1: combiner.waiting == count)
    let_go.set()
    for thread in threads:
        thread.join()
    return outcomes


def test_a_created_event_is_stored_and_answered_with_its_view(service: TicketingService) -> None:
    event = new_event("Gala", 5)

    view = service.batches.create(event, EventView.of)

    stored = service.get_event(str(event.id))
    assert (stored.name, stored.total_tickets, stored.version) == ("Gala", 5, 1)
    assert view == EventView.of(stored)
    assert len(service.history(str(event.id))) == 1


def test_a_created_events_first_command_builds_nothing_from_the_store(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = new_event()
    service.batches.create(event, EventView.of)
    decoded: list[StoredEvent] = []
    to_domain_event = service.mapper.to_domain_event

    def counted(stored: StoredEvent) -> Any:
        decoded.append(stored)
        return to_domain_event(stored)

    monkeypatch.setattr(service.mapper, "to_domain_event", counted)

    outcome = service.book(str(event.id), "alice", 1)

    assert outcome.booking_id is not None
    assert decoded == []  # the lane held the event as created, at its stored version
    assert set(service.get_event(str(event.id)).holders) == {"alice"}


def test_creations_ready_together_share_one_group(service: TicketingService) -> None:
    first, second = new_event("First"), new_event("Second")

    views = queued(
        service,
        lambda: service.batches.create(first, EventView.of),
        lambda: service.batches.create(second, EventView.of),
    )

    assert [view.name for view in views] == ["First", "Second"]
    assert service.turns.stats.largest == 2  # type: ignore[attr-defined]
    assert [service.get_event(str(e.id)).name for e in (first, second)] == ["First", "Second"]


def test_a_taken_id_is_refused_and_the_stored_event_left_as_it_was(
    service: TicketingService,
) -> None:
    original = new_event("Original")
    service.batches.create(original, EventView.of)
    twin = Event(
        id=original.id, name="Twin", total_tickets=9, max_tickets_per_user=1, organizer_id="o"
    )

    with pytest.raises(IntegrityError):
        service.batches.create(twin, EventView.of)

    stored = service.get_event(str(original.id))
    assert (stored.name, stored.version) == ("Original", 1)


def test_a_creation_refused_with_another_members_append_is_tried_again_and_stored(
    service: TicketingService,
) -> None:
    rogue = uuid4()
    service.recorder.insert_events([StoredEvent(rogue, 1, "test:Happened", b"{}")])
    event = new_event("Innocent")

    def stale_append() -> Any:  # appends a version the store holds: refused
        with service.turns.turn(rogue, 0) as turn:
            return turn.append([StoredEvent(rogue, 1, "test:Happened", b"{}")])

    refused, view = queued(
        service, stale_append, lambda: service.batches.create(event, EventView.of)
    )

    assert isinstance(refused, IntegrityError)
    assert service.turns.stats.refused == 1  # type: ignore[attr-defined]
    assert view.name == "Innocent"
    assert service.get_event(str(event.id)).name == "Innocent"


def test_adopting_keeps_a_lanes_cached_aggregate_and_a_leader_at_work() -> None:
    lanes: Lanes[str] = Lanes(lambda lane, commands: None)
    cached, at_work, idle = uuid4(), uuid4(), uuid4()
    lanes.lane(cached).aggregate = "cached"
    lanes.lane(at_work).busy = True

    for aggregate_id in (cached, at_work, idle):
        lanes.adopt(aggregate_id, "adopted")

    assert lanes.lane(cached).aggregate == "cached"
    assert lanes.lane(at_work).aggregate is None  # its leader reads the store itself
    assert lanes.lane(idle).aggregate == "adopted"


class AlwaysRefused:
    """Turns whose every append is refused as another member's would be."""

    def __init__(self) -> None:
        self.attempts = 0

    @contextmanager
    def turn(self, aggregate_id: Any, since: int | None) -> Iterator[Turn]:
        self.attempts += 1

        def append(stored: list[StoredEvent], watch: Any = None) -> Any:
            raise IntegrityError("not appended: another member's append was refused")

        yield Turn(missing=[], append=append)


def test_a_creation_refused_on_every_attempt_is_answered_busy(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = AlwaysRefused()
    monkeypatch.setattr(service.batches, "_turns", refusing)
    monkeypatch.setattr("domain.batches.pause", lambda attempt: None)
    event = new_event()

    with pytest.raises(ServiceBusy):
        service.batches.create(event, EventView.of)

    assert refusing.attempts == service.settings.command_max_attempts
    assert service.lanes.lane(event.id).aggregate is None  # nothing cached that is not stored
