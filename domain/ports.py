"""What the service needs of its store, as the service itself names it.

The store adapters (``adapters.postgres``, ``adapters.sqlite``) implement ``Turns``; the
service holds one and knows nothing of SQL or drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent


@dataclass(frozen=True)
class Watch:
    """Streams to look at as an append commits: which of them hold an event of ``topic``."""

    ids: list[UUID]
    topic: str


@dataclass(frozen=True)
class Appended:
    positions: Sequence[int]  # the notification ids of the appended events, in order
    watched: set[UUID]  # the watched streams holding an event of the watched topic


@dataclass
class Turn:
    """A leader's exclusive turn on one event's stream.

    ``missing`` holds the events stored after the leader's cached version; for a leader
    with nothing cached (``since`` is ``None``), the stream's latest ``snapshot`` (if any)
    and the events stored after it, so the leader builds the aggregate without a read of its
    own (nothing stored and no snapshot: there is no such stream). ``missing`` is ``None``
    when the store cannot tell cheaply: the leader then reads by itself. ``append`` stores a
    batch and, serialised with every other append, checks the watched streams: whatever
    committed before the batch is seen, whatever commits after it will see the batch.
    """

    missing: list[StoredEvent] | None
    append: Callable[..., Appended]
    snapshot: StoredEvent | None = None


class Turns(Protocol):
    """Exclusive turns on one event's stream, each ending in at most one append."""

    def turn(self, aggregate_id: UUID, since: int | None) -> AbstractContextManager[Turn]: ...

    def close(self) -> None: ...
