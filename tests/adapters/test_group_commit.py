"""How turns on different events form groups: who joins, who commits, who goes alone."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from adapters.group_commit import AppendCombiner, Seat
from domain.ports import Appended, Turn
from tests.adapters.grouping import together


class Recorded:
    """Transactions that store nothing: they note which seats began and committed together."""

    def __init__(self) -> None:
        self.begun: list[list[UUID]] = []
        self.committed: list[tuple[int, list[UUID]]] = []
        self.refuse_next = False
        self.fail_next_group = False

    def begin(self, seats: list[Seat]) -> Any:
        if self.fail_next_group and len(seats) > 1:
            self.fail_next_group = False
            raise OperationalError("lock timeout")
        self.begun.append([seat.aggregate_id for seat in seats])
        for seat in seats:
            seat.missing = None if seat.since is None else []
        return len(self.begun)

    def commit(self, handle: Any, seats: list[Seat], deposited: list[Seat]) -> None:
        self.committed.append((handle, [seat.aggregate_id for seat in deposited]))
        refused, self.refuse_next = self.refuse_next, False
        for seat in deposited:
            if refused:
                seat.fail(IntegrityError("duplicate key value violates unique constraint"))
            else:
                seat.appended = Appended(list(range(len(seat.batch or []))), set())


def one_event(aggregate_id: UUID) -> list[StoredEvent]:
    return [StoredEvent(aggregate_id, 1, "test:Happened", b"{}")]


def appends(aggregate_id: UUID) -> Any:
    return lambda turn: turn.append(one_event(aggregate_id))


def leaves(turn: Turn) -> None:
    return None


@pytest.fixture
def store() -> Recorded:
    return Recorded()


@pytest.fixture
def combiner(store: Recorded) -> AppendCombiner:
    return AppendCombiner(store, max_groups=1)


def test_a_lone_turn_opens_a_group_of_its_own_at_once(
    store: Recorded, combiner: AppendCombiner
) -> None:
    event = uuid4()
    with combiner.turn(event, since=None) as turn:
        appended = turn.append(one_event(event))

    assert store.begun == [[event]]
    assert store.committed == [(1, [event])]
    assert appended.positions == [0]


def test_turns_queued_together_share_one_group_with_one_seat_per_event(
    store: Recorded, combiner: AppendCombiner
) -> None:
    first, second = uuid4(), uuid4()

    outcomes = together(
        combiner,
        [
            (first, None, appends(first)),
            (second, 3, appends(second)),
            (first, None, appends(first)),  # a second lane of the first event: a later group
        ],
    )

    assert [o.error for o in outcomes] == [None, None, None]
    assert store.begun[1:] == [[first, second], [first]]
    assert [ids for _, ids in store.committed[1:]] == [[first, second], [first]]


def test_the_last_seat_to_finish_commits_what_was_deposited(
    store: Recorded, combiner: AppendCombiner
) -> None:
    leaving, appending = uuid4(), uuid4()

    outcomes = together(combiner, [(leaving, None, leaves), (appending, None, appends(appending))])

    assert outcomes[1].value.positions == [0]
    assert store.begun[1:] == [[leaving, appending]]
    assert store.committed[1:] == [(2, [appending])]  # one commit, without the seat that left


def test_the_members_of_a_refused_group_go_alone_next_time(
    store: Recorded, combiner: AppendCombiner
) -> None:
    first, second = uuid4(), uuid4()
    bodies = [(first, None, appends(first)), (second, None, appends(second))]

    def refuse_the_group(turn: Turn) -> Any:
        store.refuse_next = True
        return turn.append(one_event(first))

    refused = together(combiner, [(first, None, refuse_the_group), bodies[1]])
    retried = together(combiner, bodies)

    assert [type(o.error) for o in refused] == [IntegrityError, IntegrityError]
    assert [o.error for o in retried] == [None, None]
    assert store.begun[1] == [first, second]
    assert store.begun[3:] == [[first], [second]]  # each alone (behind the held turn)
    assert combiner.stats.refused == 1


def test_a_group_that_cannot_begin_fails_every_member_and_the_next_one_opens(
    store: Recorded, combiner: AppendCombiner
) -> None:
    first, second = uuid4(), uuid4()
    store.fail_next_group = True

    failed = together(combiner, [(first, None, appends(first)), (second, None, appends(second))])
    with combiner.turn(first, since=None) as turn:
        after = turn.append(one_event(first))

    assert [type(o.error) for o in failed] == [OperationalError, OperationalError]
    assert failed[0].error is not failed[1].error  # each raises its own instance
    assert after.positions == [0]
    assert combiner.waiting == 0
