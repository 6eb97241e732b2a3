"""Builds the write service on the store that ``DATABASE_URL`` names."""

from __future__ import annotations

from adapters.database_url import eventsourcing_env, parse_database_url
from adapters.postgres import PostgresTurns
from adapters.sqlite import RecorderTurns
from domain.service import TicketingService


def open_service(
    database_url: str | None = None,
    *,
    create_tables: bool = False,
    pool_size: int = 5,
    **settings: str,
) -> TicketingService:
    """The service on the store that ``DATABASE_URL`` names (see ``adapters.database_url``).

    ``settings`` are extra environment entries (e.g. ``SNAPSHOT_INTERVAL``, ``ARGON2_TIME_COST``).
    """
    db = parse_database_url(database_url)
    env = eventsourcing_env(db, create_tables=create_tables, pool_size=pool_size)
    env.update(settings)
    if db.is_postgres:
        return TicketingService(env, turns=lambda recorder: PostgresTurns(db, recorder))
    return TicketingService(env, turns=RecorderTurns)
