"""Group commit lanes: one writer per aggregate, queued commands decided together, no caller
left waiting whatever happens to the batch it is in."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain import lanes as lanes_module
from domain.lanes import Command, Lane, Lanes


class Recorder:
    """A run_batch that applies each command to a list and notes how batches were formed."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.batches: list[int] = []
        self.mutex = threading.Lock()
        self.applied: list[Any] = []

    def __call__(self, lane: Lane[list[Any]], commands: list[Command]) -> None:
        with self.mutex:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.batches.append(len(commands))
        try:
            for command in commands:
                command.settle(command.decide(self.applied))
        finally:
            with self.mutex:
                self.inside -= 1


def test_commands_for_one_aggregate_never_run_concurrently_and_all_get_their_outcome() -> None:
    recorder = Recorder()
    lanes: Lanes[list[Any]] = Lanes(recorder)
    aggregate_id = uuid4()

    def append(n: int) -> int:
        return lanes.execute(aggregate_id, lambda applied: applied.append(n) or len(applied))

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(append, range(400)))

    assert recorder.most_inside == 1
    assert sorted(recorder.applied) == list(range(400))
    assert sorted(answers) == list(range(1, 401))  # each caller saw its own append
    assert sum(recorder.batches) == 400 == lanes.stats.commands


def test_commands_queued_during_an_append_are_decided_together() -> None:
    release = threading.Event()
    entered = threading.Event()
    batches: list[int] = []

    def run_batch(lane: Lane[Any], commands: list[Command]) -> None:
        batches.append(len(commands))
        if len(batches) == 1:
            entered.set()
            release.wait(5)
        for command in commands:
            command.settle(command.decide(None))

    lanes: Lanes[Any] = Lanes(run_batch)
    aggregate_id = uuid4()
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(lanes.execute, aggregate_id, lambda _: "first")
        assert entered.wait(5)
        queued = [pool.submit(lanes.execute, aggregate_id, lambda _, n=n: n) for n in range(5)]
        while len(lanes.lane(aggregate_id).queue) < 5:
            threading.Event().wait(0.001)
        release.set()

        assert first.result(5) == "first"
        assert [future.result(5) for future in queued] == list(range(5))
    assert batches == [1, 5] and lanes.stats.largest_batch == 5


def test_a_failing_batch_settles_every_caller_and_hands_the_lane_on() -> None:
    release = threading.Event()
    entered = threading.Event()
    calls: list[int] = []

    def run_batch(lane: Lane[Any], commands: list[Command]) -> None:
        calls.append(len(commands))
        if len(calls) == 1:
            entered.set()
            release.wait(5)
            commands[0].settle("settled before the crash")
            raise RuntimeError("store is gone")
        for command in commands:
            command.settle("ok")

    lanes: Lanes[Any] = Lanes(run_batch)
    aggregate_id = uuid4()
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(lanes.execute, aggregate_id, lambda _: None)
        crashed = pool.submit(lanes.execute, aggregate_id, lambda _: None)
        assert entered.wait(5)
        queued = [pool.submit(lanes.execute, aggregate_id, lambda _: None) for _ in range(4)]
        while len(lanes.lane(aggregate_id).queue) < 4 + (len(calls) == 1):
            threading.Event().wait(0.001)
        release.set()

        assert first.result(5) == "settled before the crash"
        results = [future.result(5) for future in [crashed, *queued]]

    assert results == ["ok"] * 5  # the queue behind the crash was served by a successor
    assert not lanes.lane(aggregate_id).busy


def test_every_caller_of_a_crashing_batch_gets_the_error() -> None:
    def run_batch(lane: Lane[Any], commands: list[Command]) -> None:
        raise RuntimeError("store is gone")

    lanes: Lanes[Any] = Lanes(run_batch)
    aggregate_id = uuid4()
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(lanes.execute, aggregate_id, lambda _: None) for _ in range(20)]
        errors = [future.exception(5) for future in futures]

    assert all(isinstance(error, RuntimeError) for error in errors)
    assert not lanes.lane(aggregate_id).busy


def test_a_command_its_batch_forgot_to_settle_fails_rather_than_answering_nothing() -> None:
    lanes: Lanes[Any] = Lanes(lambda lane, commands: None)

    with pytest.raises(RuntimeError, match="no outcome"):
        lanes.execute(uuid4(), lambda _: "decided")


def test_a_long_queue_is_handed_over_in_batches_of_at_most_max_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lanes_module, "MAX_BATCH", 3)
    recorder = Recorder()
    lanes: Lanes[list[Any]] = Lanes(recorder)
    aggregate_id = uuid4()

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda n: lanes.execute(aggregate_id, lambda a: a.append(n)), range(60)))

    assert max(recorder.batches) <= 3 and sum(recorder.batches) == 60


def test_different_aggregates_are_served_in_parallel() -> None:
    both_inside = threading.Barrier(2, timeout=5)

    def run_batch(lane: Lane[Any], commands: list[Command]) -> None:
        both_inside.wait()  # deadlocks (and times out) if lanes were serialised globally
        for command in commands:
            command.settle(lane.aggregate_id)

    lanes: Lanes[Any] = Lanes(run_batch)
    ids: list[UUID] = [uuid4(), uuid4()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda i: lanes.execute(i, lambda _: None), ids))

    assert answers == ids


def test_idle_lanes_beyond_the_limit_are_evicted_least_recently_used_first() -> None:
    lanes: Lanes[list[Any]] = Lanes(Recorder(), max_lanes=3)
    ids = [uuid4() for _ in range(5)]
    for aggregate_id in ids[:3]:
        lanes.execute(aggregate_id, lambda state: None)
    lanes.execute(ids[0], lambda state: None)  # used again: now the most recent
    for aggregate_id in ids[3:]:
        lanes.execute(aggregate_id, lambda state: None)

    assert len(lanes) == 3
    kept = lanes.lane(ids[0])
    assert lanes.lane(ids[0]) is kept  # still the same lane: it was not evicted


def test_a_busy_lane_is_never_evicted() -> None:
    lanes: Lanes[list[Any]] = Lanes(Recorder(), max_lanes=1)
    busy = lanes.lane(uuid4())
    busy.busy = True
    lanes.lane(uuid4())
    newest = lanes.lane(uuid4())

    assert len(lanes) == 2  # the idle middle one went; the busy and the newest stay
    assert lanes.lane(busy.aggregate_id) is busy
    assert lanes.lane(newest.aggregate_id) is newest


class CountedId(UUID):
    """An aggregate id that counts how often the lanes' table looks it up."""

    lookups = 0

    def __hash__(self) -> int:
        CountedId.lookups += 1
        return super().__hash__()


def test_a_new_lane_past_the_limit_looks_at_the_oldest_lanes_only() -> None:
    lanes: Lanes[Any] = Lanes(lambda lane, commands: None, max_lanes=500)
    for _ in range(500):
        lanes.lane(CountedId(int=uuid4().int))
    CountedId.lookups = 0

    for _ in range(100):
        lanes.lane(uuid4())  # each evicts the least recently used idle lane

    assert len(lanes) == 500
    assert CountedId.lookups <= 100 * 3  # not every lane's key for every new lane


def test_a_worker_keeps_the_lanes_of_thousands_of_events_in_play() -> None:
    lanes: Lanes[Any] = Lanes(lambda lane, commands: None)
    ids = [uuid4() for _ in range(5000)]
    first = [lanes.lane(aggregate_id) for aggregate_id in ids]

    again = [lanes.lane(aggregate_id) for aggregate_id in ids]  # round robin, as bookings come

    assert all(a is b for a, b in zip(first, again, strict=True))
