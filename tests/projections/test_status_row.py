"""One event-status shape: the read model's row, a replay's and the write service's view
all give the same status document."""

from __future__ import annotations

from datetime import datetime

from api.presenters import event_status_json
from domain.service import TicketingService
from domain.views import EventView
from projections.queries import ReadModel
from projections.replay import replay, status_row, stored_until
from projections.runner import ProjectionRunner
from tests.projections.support import random_history


def moment(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_a_replayed_status_row_is_the_projected_row_but_for_the_projection_s_moments(
    store: TicketingService, database_url: str
) -> None:
    event_ids = random_history(store, 600, events=3, seed=19)
    runner = ProjectionRunner(database_url, log=store)
    read_model = ReadModel(database_url)
    try:
        runner.process_available()
        for event_id in event_ids:
            projected = read_model.event_status(event_id)
            replayed = status_row(replay(stored_until(store, event_id)))
            assert projected is not None
            assert list(replayed) == list(projected)
            assert moment(replayed["created_at"]) == moment(projected["created_at"])
            moments = ("created_at", "closed_at", "updated_at")
            assert {k: v for k, v in replayed.items() if k not in moments} == {
                k: v for k, v in projected.items() if k not in moments
            }
    finally:
        read_model.close()
        runner.close()


def test_the_status_document_is_the_same_from_the_read_model_a_replay_and_the_service(
    store: TicketingService, database_url: str
) -> None:
    event = store.create_event("organizer", "Gala", 2, 2)
    store.book(event.id, "alice", 1)
    store.book(event.id, "bob", 2)  # one seat now, one waiting
    store.close_event(event.id, "organizer")
    runner = ProjectionRunner(database_url, log=store)
    read_model = ReadModel(database_url)
    try:
        runner.process_available()
        aggregate = store.get_event(event.id)
        from_read_model = event_status_json(read_model.event_status(event.id) or {})
        from_replay = event_status_json(status_row(aggregate))
        from_service = event_status_json(EventView.of(aggregate))
    finally:
        read_model.close()
        runner.close()
    assert from_read_model == from_replay == from_service
    assert from_service["status"] == "closed" and from_service["waitingListCount"] == 1
