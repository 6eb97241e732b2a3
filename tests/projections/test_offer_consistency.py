"""After an offer-mode history the read models agree with a replay of the store, on both
stores: verification finds them consistent (and finds a tampered row), a rebuild makes the
same rows as the live projection, and the status rows are the replay's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.service import TicketingService
from projections.queries import ReadModel
from projections.rebuild import rebuild
from projections.replay import replay, status_row, stored_until
from projections.runner import ProjectionRunner
from projections.verify import verify
from tests.projections.support import Clock, offer_history, read_model_rows, stored_event_count

MOMENTS = ("created_at", "closed_at", "updated_at")


@pytest.fixture
def projected(
    store: TicketingService, database_url: str, clock: Clock
) -> Iterator[tuple[list[str], ReadModel]]:
    """An offer-mode history, projected: its event ids and a read model over it."""
    event_ids = offer_history(store, 1200, clock)
    runner = ProjectionRunner(database_url, log=store, batch_size=97)
    try:
        assert runner.process_available() == stored_event_count(store)
    finally:
        runner.close()
    read_model = ReadModel(database_url, log=store)
    yield event_ids, read_model
    read_model.close()


def offer_event_ids(store: TicketingService, event_ids: list[str]) -> list[str]:
    return [e for e in event_ids if store.get_event(e).waitlist_mode == "offer"]


def test_the_history_makes_every_kind_of_offer(
    projected: tuple[list[str], ReadModel], database_url: str
) -> None:
    offers = read_model_rows(database_url)["offers"]
    assert {"open", "accepted", "declined", "expired"} <= {offer["status"] for offer in offers}
    statuses = {row["status"] for row in read_model_rows(database_url)["waiting_list"]}
    assert {"declined", "expired", "promoted"} <= statuses


def test_verify_finds_the_read_models_consistent_after_an_offer_mode_history(
    store: TicketingService, projected: tuple[list[str], ReadModel]
) -> None:
    event_ids, read_model = projected
    for event_id in event_ids:
        report = verify(store, read_model, event_id)
        assert report["consistent"], report["differences"][:5]


TAMPERINGS = {
    "held_tickets": (
        "UPDATE event_status SET held_tickets = held_tickets + 1 WHERE event_id = ?",
        "event_status",
    ),
    "offer_status": (
        "UPDATE offers SET status = 'expired' WHERE event_id = ? AND status = 'open'",
        "offers",
    ),
    "settled_offer": (
        "UPDATE offers SET status = 'declined' WHERE event_id = ? AND status = 'accepted'",
        "offers",
    ),
    "offer_deadline": (
        "UPDATE offers SET expires_at = made_at WHERE event_id = ? AND status = 'open'",
        "offers",
    ),
    "holding_offer": (
        "UPDATE user_holdings SET offer_id = NULL, status = 'waitlisted' "
        "WHERE event_id = ? AND status = 'offered'",
        "user_holdings",
    ),
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_verify_finds_a_tampered_offer_row(
    store: TicketingService, projected: tuple[list[str], ReadModel], tampering: str
) -> None:
    statement, table = TAMPERINGS[tampering]
    event_ids, read_model = projected
    tampered = 0
    for event_id in offer_event_ids(store, event_ids):
        with read_model.database.transaction() as cursor:
            changed = cursor.execute(statement, [event_id])
        if changed:
            tampered += 1
            report = verify(store, read_model, event_id)
            assert not report["consistent"]
            assert {d["table"] for d in report["differences"]} == {table}
    assert tampered, f"the history left no row for {tampering} to change"


def test_a_rebuild_makes_the_rows_the_live_projection_made(
    store: TicketingService, projected: tuple[list[str], ReadModel], database_url: str
) -> None:
    live = read_model_rows(database_url)
    assert rebuild(database_url, log=store, progress=False) == stored_event_count(store)
    assert read_model_rows(database_url) == live
    assert live["offers"]


def test_the_projected_status_rows_are_the_replay_s_but_for_the_projection_s_moments(
    store: TicketingService, projected: tuple[list[str], ReadModel]
) -> None:
    event_ids, read_model = projected
    for event_id in event_ids:
        row = read_model.event_status(event_id)
        replayed = status_row(replay(stored_until(store, event_id)))
        assert row is not None and list(row) == list(replayed)
        assert {k: v for k, v in row.items() if k not in MOMENTS} == {
            k: v for k, v in replayed.items() if k not in MOMENTS
        }
    assert {read_model.event_status(e)["waitlist_mode"] for e in event_ids} == {"auto", "offer"}
