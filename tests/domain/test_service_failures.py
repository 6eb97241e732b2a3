"""How the service behaves when the store misbehaves: retry, answer busy, never keep phantoms."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from adapters import open_service
from domain.entries import Idempotency
from domain.errors import ServiceBusy, UserNotFound
from domain.ports import Turn
from domain.service import TicketingService
from tests.conftest import FAST_HASHING
from tests.domain.support import ORGANIZER, bookings


def with_settings(database_url: str, **settings: str) -> TicketingService:
    """A service on a fresh store, with these settings."""
    return open_service(database_url, create_tables=True, **FAST_HASHING, **settings)


def wrap_appends(
    service: TicketingService,
    monkeypatch: pytest.MonkeyPatch,
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> None:
    """Wrap every append: the recorder's (SQLite, new events, accounts) and the event
    writer's turns (PostgreSQL lanes append on the turn's own connection)."""
    recorder = service.events.recorder
    monkeypatch.setattr(recorder, "insert_events", wrap(recorder.insert_events))
    real_turn = service.turns.turn

    @contextmanager
    def turn(aggregate_id: Any, since: int | None) -> Iterator[Turn]:
        with real_turn(aggregate_id, since) as real:
            yield Turn(real.missing, wrap(real.append))

    monkeypatch.setattr(service.turns, "turn", turn)


def failing_appends(
    service: TicketingService, failures: int, error: Exception, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], int]:
    """Make the next ``failures`` appends raise ``error`` without writing; returns a counter."""
    calls = {"failed": 0}

    def wrap(real_append: Callable[..., Any]) -> Callable[..., Any]:
        def append(stored_events: Any, **kwargs: Any) -> Any:
            if calls["failed"] < failures:
                calls["failed"] += 1
                raise error
            return real_append(stored_events, **kwargs)

        return append

    wrap_appends(service, monkeypatch, wrap)
    return lambda: calls["failed"]


def test_a_transient_store_error_is_retried_and_the_command_succeeds(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id
    service.book(event_id, "ann")
    failed = failing_appends(service, 2, OperationalError("database is locked"), monkeypatch)

    outcome = service.book(event_id, "bob")

    assert failed() == 2 and outcome.quantity == 1
    assert bookings(service.get_event(event_id)) == {"ann": 1, "bob": 1}


def test_a_store_that_stays_unavailable_answers_busy_and_keeps_no_phantom_state(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id
    service.book(event_id, "ann")
    failing_appends(service, 10_000, OperationalError("database is locked"), monkeypatch)

    with pytest.raises(ServiceBusy):
        service.book(event_id, "bob")

    monkeypatch.undo()
    assert service.book(event_id, "bob").quantity == 1  # not AlreadyBooked by a phantom
    assert bookings(service.get_event(event_id)) == {"ann": 1, "bob": 1}


def test_an_unexpected_append_error_surfaces_and_keeps_no_phantom_state(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    service.book(event_id, "ann")
    failing_appends(service, 1, RuntimeError("disk on fire"), monkeypatch)

    with pytest.raises(RuntimeError):
        service.cancel("ann", event_id=event_id)

    _, outcome = service.cancel("ann", event_id=event_id)  # still held: it was never stored
    assert outcome.released == 1


def test_conflicts_beyond_the_retry_budget_answer_busy(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id
    service.book(event_id, "ann")
    failing_appends(service, 10_000, IntegrityError("duplicate key value"), monkeypatch)

    with pytest.raises(ServiceBusy):
        service.book(event_id, "bob")

    assert service.lanes.stats.conflicts == service.settings.command_max_attempts
    monkeypatch.undo()
    assert service.book(event_id, "bob").quantity == 1


def test_a_failing_listener_does_not_fail_a_committed_command(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id

    def broken_listener() -> None:
        raise RuntimeError("projection runner is down")

    service.after_append.append(broken_listener)

    outcome = service.book(event_id, "ann", idempotency=Idempotency("ann:1", "h"))

    assert outcome.quantity == 1 and not outcome.replayed
    assert bookings(service.get_event(event_id)) == {"ann": 1}


def test_a_failing_snapshot_does_not_fail_a_committed_command(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = open_service(database_url, create_tables=True, SNAPSHOT_INTERVAL="2")
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id

    def broken_put(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("snapshot table is locked")

    monkeypatch.setattr(service.snapshots, "put", broken_put)

    outcome = service.book(event_id, "ann")

    assert outcome.quantity == 1
    assert bookings(service.get_event(event_id)) == {"ann": 1}
    service.close()


def test_creating_an_event_while_the_store_is_locked_answers_busy(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_appends(service, 10_000, OperationalError("database is locked"), monkeypatch)

    with pytest.raises(ServiceBusy):
        service.create_event(ORGANIZER, "Gig", total_tickets=1)


def test_an_append_whose_acknowledgement_was_lost_answers_its_own_outcome(
    service: TicketingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id
    lost = {"count": 0}

    def wrap(real_append: Callable[..., Any]) -> Callable[..., Any]:
        def commit_then_lose_the_answer(stored_events: Any, **kwargs: Any) -> Any:
            result = real_append(stored_events, **kwargs)
            if not lost["count"]:
                lost["count"] += 1
                raise OperationalError("server closed the connection unexpectedly")
            return result

        return commit_then_lose_the_answer

    wrap_appends(service, monkeypatch, wrap)

    outcome = service.book(event_id, "ann")  # not AlreadyBooked by its own committed write

    assert lost["count"] == 1 and outcome.quantity == 1 and outcome.booking_id
    stored = [type(e).__name__ for e in service.history(event_id)]
    assert stored == ["EventInitialized", "TicketBooked"]
    assert service.book(event_id, "bob").quantity == 1  # the lane's state is the stored one
    assert bookings(service.get_event(event_id)) == {"ann": 1, "bob": 1}


def test_retries_stop_at_the_command_deadline_even_with_attempts_left(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    service = with_settings(
        database_url, COMMAND_MAX_ATTEMPTS="10000", COMMAND_DEADLINE_SECONDS="0.3"
    )
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id
    service.book(event_id, "ann")
    failing_appends(service, 10_000, OperationalError("server is starting up"), monkeypatch)

    started = time.monotonic()
    with pytest.raises(ServiceBusy):
        service.book(event_id, "bob")

    assert time.monotonic() - started < 2
    service.close()


def test_a_compensation_the_store_refuses_is_logged_for_operators(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from uuid import UUID

    service = with_settings(database_url, COMMAND_MAX_ATTEMPTS="2")
    ann = service.accounts.register_user("ann", "ann@example.com", "password1")
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id
    calls = {"appends": 0}

    def wrap(real_append: Callable[..., Any]) -> Callable[..., Any]:
        def append(stored_events: Any, **kwargs: Any) -> Any:
            if "watch" in kwargs:  # a lane's append (not the account's own save)
                calls["appends"] += 1
                if calls["appends"] > 1:  # the booking commits; its release does not
                    raise OperationalError("database is locked")
            return real_append(stored_events, **kwargs)

        return append

    def decide(event: Any) -> Any:
        if not calls["appends"]:
            service.delete_user(ann.id, [])  # deleted while the booking is being decided
        return event.book(ann.id, 1)

    wrap_appends(service, monkeypatch, wrap)
    with pytest.raises(UserNotFound):
        service.lanes.execute(UUID(event_id), decide, actor=ann.id)

    assert "releasing a deleted account's holding failed" in caplog.text
    assert event_id in caplog.text
    service.close()
