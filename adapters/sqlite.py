"""The embedded store's side of the write path."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from adapters.group_commit import MAX_GROUPS, AppendCombiner, Seat
from domain.ports import Appended, Turn


class RecorderTurns:
    """A single process (the embedded SQLite default) needs nothing beyond its lanes to keep
    one writer per event: the library's recorder appends, and its version check refuses a
    stale append. The batches of different events that are ready together are still
    appended as one transaction (``adapters.group_commit``): one commit, one sync of the
    write-ahead log, for all of them.

    SQLite cannot say which row a refused transaction tripped on, so after a refused group
    every member tries again alone.
    """

    def __init__(self, recorder: Any, max_groups: int = MAX_GROUPS) -> None:
        self._recorder = recorder
        self._combiner = AppendCombiner(self, max_groups)
        self.stats = self._combiner.stats

    def turn(self, aggregate_id: UUID, since: int | None) -> AbstractContextManager[Turn]:
        return self._combiner.turn(aggregate_id, since)

    def begin(self, seats: list[Seat]) -> None:
        """Nothing to take: the lanes hold each event, and each leader catches up itself."""

    def commit(self, handle: None, seats: list[Seat], deposited: list[Seat]) -> None:
        if not deposited:
            return
        try:
            positions = self._recorder.insert_events(
                [event for seat in deposited for event in seat.batch or []]
            )
        except Exception as error:
            for seat in deposited:
                seat.fail(error)
            return
        # After the commit: SQLite serialises writers, so a watched append that commits
        # later will see this batch, and one that committed earlier is seen here.
        watched = {
            (stream, seat.watch.topic)
            for seat in deposited
            if seat.watch is not None
            for stream in seat.watch.ids
        }
        seen = {
            (stream, topic)
            for stream, topic in watched
            if any(e.topic == topic for e in self._recorder.select_events(stream))
        }
        start = 0
        for seat in deposited:
            count = len(seat.batch or [])
            streams = {s for s, topic in seen if seat.watch and topic == seat.watch.topic}
            seat.appended = Appended(
                (positions or [])[start : start + count],
                streams & set(seat.watch.ids) if seat.watch else set(),
            )
            start += count

    def close(self) -> None:
        pass
