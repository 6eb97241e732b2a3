"""Groups of turns on the embedded store: one transaction for the events ready together."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from adapters import open_service
from adapters.group_commit import AppendCombiner
from adapters.sqlite import RecorderTurns
from domain.ports import Watch
from domain.service import TicketingService
from tests.adapters.grouping import together

TOPIC = "test:Happened"


@pytest.fixture
def service(tmp_path) -> Iterator[TicketingService]:
    svc = open_service(f"sqlite:///{tmp_path}/ticketing.db", create_tables=True)
    yield svc
    svc.close()


@pytest.fixture
def transactions(service: TicketingService, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many events each of the recorder's transactions appended."""
    sizes: list[int] = []
    insert_events = service.recorder.insert_events

    def counted(stored: list[StoredEvent], **kwargs: Any) -> Any:
        sizes.append(len(stored))
        return insert_events(stored, **kwargs)

    monkeypatch.setattr(service.recorder, "insert_events", counted)
    return sizes


@pytest.fixture
def combiner(service: TicketingService) -> AppendCombiner:
    return AppendCombiner(RecorderTurns(service.recorder), max_groups=1)


def events(stream: Any, *versions: int, topic: str = TOPIC) -> list[StoredEvent]:
    return [StoredEvent(stream, v, topic, b"{}") for v in versions]


def test_members_of_a_group_are_appended_in_one_transaction_each_told_its_positions(
    combiner: AppendCombiner, transactions: list[int]
) -> None:
    first, second = uuid4(), uuid4()

    outcomes = together(
        combiner,
        [
            (first, None, lambda turn: turn.append(events(first, 1, 2))),
            (second, None, lambda turn: turn.append(events(second, 1))),
        ],
    )

    assert transactions == [3]
    first_positions, second_positions = (o.value.positions for o in outcomes)
    assert len(first_positions) == 2 and len(second_positions) == 1
    assert second_positions[0] == first_positions[-1] + 1


def test_each_member_sees_the_watched_streams_it_watches(
    service: TicketingService, combiner: AppendCombiner
) -> None:
    first, second, closed = uuid4(), uuid4(), uuid4()
    service.recorder.insert_events(events(closed, 1, topic="test:Closed"))

    def watching(stream: Any, *accounts: Any) -> Any:
        return lambda turn: turn.append(
            events(stream, 1), watch=Watch(list(accounts), "test:Closed")
        )

    outcomes = together(
        combiner, [(first, None, watching(first, closed)), (second, None, watching(second))]
    )

    assert outcomes[0].value.watched == {closed}
    assert outcomes[1].value.watched == set()


def test_a_refused_group_leaves_the_others_to_succeed_on_their_retry(
    service: TicketingService, combiner: AppendCombiner
) -> None:
    stale, innocent = uuid4(), uuid4()
    service.recorder.insert_events(events(stale, 1))
    bodies = [
        (stale, None, lambda turn: turn.append(events(stale, 1))),  # decided on a stale version
        (innocent, None, lambda turn: turn.append(events(innocent, 1))),
    ]

    first = together(combiner, bodies)
    retry = together(combiner, bodies)

    assert [type(o.error) for o in first] == [IntegrityError, IntegrityError]
    assert isinstance(retry[0].error, IntegrityError)
    assert retry[1].error is None
    assert [e.originator_version for e in service.recorder.select_events(innocent)] == [1]
