"""Turns that are ready together, made so on purpose: a turn on another event holds the only
group slot while the turns under test queue up in a known order, then lets go."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from adapters.group_commit import AppendCombiner
from domain.ports import Turn

Body = Callable[[Turn], Any]


def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the turns never queued up")
        time.sleep(0.001)


class Outcome:
    """What one turn's body returned or raised."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None


def together(
    combiner: AppendCombiner, bodies: list[tuple[UUID, int | None, Body]]
) -> list[Outcome]:
    """Run each (event, since, body) in a turn of its own, all queued behind one held turn
    (``combiner`` has one group slot), in the given order; returns their outcomes."""
    outcomes = [Outcome() for _ in bodies]
    holding, let_go = threading.Event(), threading.Event()

    def hold() -> None:
        with combiner.turn(uuid4(), None):
            holding.set()
            let_go.wait()

    def run(index: int, aggregate_id: UUID, since: int | None, body: Body) -> None:
        try:
            with combiner.turn(aggregate_id, since) as turn:
                outcomes[index].value = body(turn)
        except BaseException as error:  # noqa: BLE001 - the test looks at it
            outcomes[index].error = error

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    holding.wait()
    for index, (aggregate_id, since, body) in enumerate(bodies):
        thread = threading.Thread(target=run, args=(index, aggregate_id, since, body))
        threads.append(thread)
        thread.start()
        wait_for(lambda count=index + 1: combiner.waiting == count)
    let_go.set()
    for thread in threads:
        thread.join()
    return outcomes
