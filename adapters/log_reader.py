"""The store's log for the followers that read it: the library's recorder and mapper alone.

The projection reads notifications and decodes them into domain events; it needs none of the
write service (its lanes, turns and password hashing). ``open_log`` builds the recorder and
the mapper the way ``eventsourcing.Application`` builds them for the service, from the same
environment, so a follower decodes every stored event exactly as the service does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    DatetimeAsISO,
    DecimalAsStr,
    EventStore,
    InfrastructureFactory,
    JSONTranscoder,
    Mapper,
    UUIDAsHex,
)
from eventsourcing.utils import Environment

# Decoding resolves each stored topic to its class: importing these registers them all.
import domain.event  # noqa: F401
import domain.user  # noqa: F401
from adapters.database_url import eventsourcing_env, parse_database_url
from domain.store import STORE_NAME


class StoreLog(Protocol):
    """What a follower reads: the store's notifications, the mapper that decodes them, and
    the aggregates' stored events (for replaying one, ``domain.store.event_history``).

    ``LogReader`` provides them; so does the write service, for a follower in its process.
    """

    @property
    def recorder(self) -> ApplicationRecorder: ...

    @property
    def mapper(self) -> Mapper[UUID]: ...

    @property
    def events(self) -> EventStore[UUID]: ...


@dataclass
class LogReader:
    recorder: ApplicationRecorder
    mapper: Mapper[UUID]
    events: EventStore[UUID]
    factory: InfrastructureFactory[Any]

    def close(self) -> None:
        self.factory.close()


def open_log(database_url: str | None = None, *, pool_size: int = 2) -> LogReader:
    """The log of the store ``database_url`` names, on connections of its own."""
    db = parse_database_url(database_url)
    settings = eventsourcing_env(db, create_tables=False, pool_size=pool_size)
    # The store's settings alone, as the service takes them (``TicketingService.construct_env``):
    # a variable of the process merged in (a compressor, a cipher) would decode otherwise
    # than the service encoded.
    factory = InfrastructureFactory.construct(Environment(STORE_NAME, settings))
    transcoder = factory.transcoder()
    if isinstance(transcoder, JSONTranscoder):
        # The transcodings ``Application.register_transcodings`` gives the service, which
        # registers no others.
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            transcoder.register(transcoding)
    recorder = factory.application_recorder()
    mapper = factory.mapper(transcoder=transcoder)
    return LogReader(recorder, mapper, EventStore(mapper, recorder), factory)
