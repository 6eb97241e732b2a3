"""The embedded store's side of the write path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.ports import Appended, Turn, Watch


class RecorderTurns:
    """A single process (the embedded SQLite default) needs nothing beyond its lanes: the
    library's recorder appends, and its version check refuses a stale append."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder

    @contextmanager
    def turn(self, aggregate_id: UUID, since: int | None) -> Iterator[Turn]:
        yield Turn(None, self._append)

    def _append(self, stored: list[StoredEvent], watch: Watch | None = None) -> Appended:
        positions = self._recorder.insert_events(stored) or []
        # After the commit: SQLite serialises writers, so a watched append that commits
        # later will see this batch, and one that committed earlier is seen here.
        watched = set()
        for stream in watch.ids if watch else []:
            if any(e.topic == watch.topic for e in self._recorder.select_events(stream)):
                watched.add(stream)
        return Appended(positions, watched)

    def close(self) -> None:
        pass
