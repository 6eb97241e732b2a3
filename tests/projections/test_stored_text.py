"""A stored event whose text the read models' database cannot hold stops no projection.

New input refuses NUL (U+0000) in every string, but older code accepted it in event names and
the store keeps them; PostgreSQL's text cannot hold it. The read models store U+FFFD instead.
"""

from __future__ import annotations

from domain.service import TicketingService
from projections.queries import ReadModel
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.verify import verify
from tests.domain.support import ORGANIZER
from tests.projections.support import stored_event_count

STORED_NAME = "Gig\x00Night"
PROJECTED_NAME = "Gig\ufffdNight"


def test_a_stored_name_with_nul_is_projected_with_a_replacement_character(
    store: TicketingService, database_url: str
) -> None:
    named = store.create_event(ORGANIZER, STORED_NAME, 2)  # the domain layer, bypassing the API
    store.book(named.id, "fan")
    after = store.create_event(ORGANIZER, "After", 2)
    runner = ProjectionRunner(database_url, log=store)
    read_model = ReadModel(database_url, log=store)
    try:
        assert runner.process_available() == stored_event_count(store)

        assert runner.position() == stored_event_count(store)
        status = read_model.event_status(named.id)
        assert (status["name"], status["booked_tickets"]) == (PROJECTED_NAME, 1)
        assert read_model.event_status(after.id)["name"] == "After"
        assert verify(store, read_model, named.id)["consistent"]
    finally:
        read_model.close()
        runner.close()


def test_a_rebuild_projects_a_stored_name_with_nul_too(
    store: TicketingService, database_url: str
) -> None:
    named = store.create_event(ORGANIZER, STORED_NAME, 2)

    assert rebuild(database_url, log=store, progress=False) == stored_event_count(store)
    read_model = ReadModel(database_url, log=store)
    try:
        assert read_model.event_status(named.id)["name"] == PROJECTED_NAME
    finally:
        read_model.close()
