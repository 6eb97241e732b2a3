"""Builds the write service on the store that ``DATABASE_URL`` names."""

from __future__ import annotations

from adapters.database_url import eventsourcing_env, parse_database_url
from adapters.postgres import PostgresTurns
from adapters.sqlite import RecorderTurns
from domain.service import TicketingService
from domain.settings import ServiceSettings


def open_service(
    database_url: str | None = None,
    *,
    create_tables: bool = False,
    pool_size: int = 5,
    settings: ServiceSettings | None = None,
    **named_settings: str,
) -> TicketingService:
    """The service on the store that ``DATABASE_URL`` names (see ``adapters.database_url``).

    ``settings`` are the service's settings (the defaults when omitted); ``named_settings``
    change some of them by name, spelled as text (``SNAPSHOT_INTERVAL="10"``,
    ``ARGON2_TIME_COST="1"``), as scripts and tests pass them.
    """
    service_settings = ServiceSettings.from_strings(named_settings, base=settings)
    db = parse_database_url(database_url)
    env = eventsourcing_env(db, create_tables=create_tables, pool_size=pool_size)
    if db.is_postgres:
        return TicketingService(
            env, turns=lambda recorder: PostgresTurns(db, recorder), settings=service_settings
        )
    return TicketingService(env, turns=RecorderTurns, settings=service_settings)
