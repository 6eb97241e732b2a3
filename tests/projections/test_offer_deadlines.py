"""The offer deadline follower on both stores: its table follows the log, it expires what is
due through the service, once, and keeps going after failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from eventsourcing.persistence import OperationalError

from adapters import open_service
from adapters.sql import ReadModelDatabase
from api.cli import main
from api.composition import migrate
from domain.service import TicketingService
from projections import tracking
from projections.offer_deadlines import TRACKING_NAME, OfferDeadlineFollower
from tests.conftest import FAST_HASHING
from tests.projections.deadline_support import (
    TTL,
    Clock,
    cancel_into_offers,
    expirations,
    offer_event,
    open_offers,
    patch_clock,
)

PAST_DUE = TTL + 1  # seconds: a clock moved this far has every offer made before it due


@pytest.fixture
def store(database_url: str) -> Iterator[TicketingService]:
    migrate(database_url)
    service = open_service(database_url, **FAST_HASHING)
    yield service
    service.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return patch_clock(monkeypatch)


@pytest.fixture
def follower(store: TicketingService, database_url: str) -> Iterator[OfferDeadlineFollower]:
    follower = OfferDeadlineFollower(database_url, service=store, poll_interval=0.1)
    yield follower
    follower.close()


def deadlines(database_url: str) -> dict[str, datetime]:
    database = ReadModelDatabase(database_url)
    try:
        rows = database.query("SELECT offer_id, expires_at FROM offer_deadlines")
    finally:
        database.close()
    return {row["offer_id"]: _moment(row["expires_at"]) for row in rows}


def _moment(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC)


def wait_until(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


class Settlements:
    """The service, with the events it was asked to settle noted; the first ``failures``
    requests, and every one for the ``broken`` event, fail as a lost store would."""

    def __init__(self, service: TicketingService, failures: int = 0, broken: str = "") -> None:
        self.service = service
        self.failures = failures
        self.broken = broken
        self.asked: list[str] = []

    def settle_due_offers(self, event_id: str) -> list[str]:
        self.asked.append(event_id)
        if self.failures or event_id == self.broken:
            self.failures = max(0, self.failures - 1)
            raise OperationalError("the store went away")
        return self.service.settle_due_offers(event_id)


def test_the_table_holds_exactly_the_open_offers_and_their_deadlines(
    store: TicketingService, follower: OfferDeadlineFollower, database_url: str, clock: Clock
) -> None:
    event_id, holders = offer_event(store, seats=6, waiting=12)
    accepted, declined, *_rest = cancel_into_offers(store, holders[:4])
    store.accept_offer(accepted, "Show-fan0")
    store.decline_offer(declined, "Show-fan1")  # its seat is offered to the next head
    assert follower.process_available() > 0
    assert deadlines(database_url) == open_offers(store, event_id)

    clock.offset = timedelta(seconds=61)
    expired = store.settle_due_offers(event_id)  # expired by a command, not the follower
    assert len(expired) == 3
    follower.process_available()
    assert set(deadlines(database_url)) == set(open_offers(store, event_id))
    assert not set(expired) & set(deadlines(database_url))


def test_a_restarted_follower_resumes_at_its_position(
    store: TicketingService, database_url: str
) -> None:
    event_id, holders = offer_event(store, seats=4, waiting=8)
    cancel_into_offers(store, holders[:2])
    first = OfferDeadlineFollower(database_url, service=store)
    assert first.process_available() == 2
    stopped_at = first.position()
    first.close()

    cancel_into_offers(store, holders[2:])
    restarted = OfferDeadlineFollower(database_url, service=store)
    try:
        assert restarted.process_available() == 2  # the two new offers, not all four
        assert restarted.position() > stopped_at
    finally:
        restarted.close()
    assert deadlines(database_url) == open_offers(store, event_id)


def test_deadlines_are_rebuilt_from_the_log_when_the_table_is_lost(
    store: TicketingService, follower: OfferDeadlineFollower, database_url: str
) -> None:
    event_id, holders = offer_event(store, seats=5, waiting=10)
    offers = cancel_into_offers(store, holders)
    store.accept_offer(offers[0], "Show-fan0")
    follower.process_available()
    kept = deadlines(database_url)
    with follower.database.transaction() as cursor:
        cursor.execute("DELETE FROM offer_deadlines")
        tracking.forget(cursor, TRACKING_NAME)

    follower.process_available()

    assert deadlines(database_url) == kept == open_offers(store, event_id)


def test_a_due_offer_expires_once_with_nobody_calling(
    store: TicketingService, follower: OfferDeadlineFollower, database_url: str, clock: Clock
) -> None:
    event_id, holders = offer_event(store, seats=3, waiting=3)
    offers = cancel_into_offers(store, holders)
    follower.start()
    assert wait_until(lambda: len(deadlines(database_url)) == 3)

    clock.offset = timedelta(seconds=PAST_DUE)
    assert wait_until(lambda: set(expirations(database_url)) == set(offers))
    time.sleep(0.5)  # further rounds, polls included, expire nothing again

    assert expirations(database_url) == {offer_id: 1 for offer_id in offers}
    assert set(open_offers(store, event_id)) == set(deadlines(database_url))
    assert not set(offers) & set(deadlines(database_url))


def test_an_offer_before_its_deadline_is_left_open(
    store: TicketingService, follower: OfferDeadlineFollower, database_url: str, clock: Clock
) -> None:
    event_id, holders = offer_event(store, seats=1, waiting=1)
    [offer] = cancel_into_offers(store, holders)
    spy = Settlements(store)
    follower.service = spy

    clock.offset = timedelta(seconds=59)
    follower.run_once()
    assert spy.asked == [] and not expirations(database_url)
    assert offer in open_offers(store, event_id)

    clock.offset = timedelta(seconds=PAST_DUE)
    follower.run_once()
    assert spy.asked == [event_id] and expirations(database_url) == {offer: 1}


def test_an_append_in_the_process_wakes_the_follower(
    store: TicketingService, database_url: str
) -> None:
    follower = OfferDeadlineFollower(database_url, service=store, poll_interval=30)
    store.after_append.append(follower.wake)  # as the embedded app wires it
    try:
        follower.start()
        time.sleep(0.2)  # its first round is over: it waits out the 30 s poll now
        event_id, holders = offer_event(store, seats=1, waiting=1)
        [offer] = cancel_into_offers(store, holders)
        assert wait_until(lambda: offer in deadlines(database_url), timeout=5)
    finally:
        follower.close()


@pytest.mark.postgres
def test_a_notify_from_another_process_wakes_the_follower(postgres_url: str) -> None:
    migrate(postgres_url)
    writer = open_service(postgres_url, **FAST_HASHING)  # not wired to the follower
    settler = open_service(postgres_url, **FAST_HASHING)
    follower = OfferDeadlineFollower(postgres_url, service=settler, poll_interval=30)
    try:
        follower.start()
        time.sleep(0.5)
        _event_id, holders = offer_event(writer, seats=1, waiting=1)
        [offer] = cancel_into_offers(writer, holders)
        assert wait_until(lambda: offer in deadlines(postgres_url), timeout=5)
    finally:
        follower.close()
        settler.close()
        writer.close()


def test_a_failed_round_is_logged_and_retried(
    store: TicketingService, database_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    _event_id, holders = offer_event(store, seats=2, waiting=2)
    offers = cancel_into_offers(store, holders)
    flaky = Settlements(store, failures=3)
    follower = OfferDeadlineFollower(database_url, service=flaky, poll_interval=0.1)
    clock.offset = timedelta(seconds=PAST_DUE)
    try:
        with caplog.at_level(logging.WARNING, logger="ticketing.offer_deadlines"):
            follower.start()
            assert wait_until(lambda: set(expirations(database_url)) == set(offers))
    finally:
        follower.close()
    assert flaky.failures == 0
    assert "offer deadline round failed" in caplog.text
    assert expirations(database_url) == {offer_id: 1 for offer_id in offers}


def test_an_event_that_fails_to_settle_holds_back_no_other(
    store: TicketingService, follower: OfferDeadlineFollower, database_url: str, clock: Clock
) -> None:
    broken_id, broken_holders = offer_event(store, seats=1, waiting=1, name="Broken")
    fine_id, fine_holders = offer_event(store, seats=1, waiting=1, name="Fine")
    [stuck] = cancel_into_offers(store, broken_holders)
    [offer] = cancel_into_offers(store, fine_holders)
    follower.service = Settlements(store, broken=broken_id)
    clock.offset = timedelta(seconds=PAST_DUE)

    follower.run_once()

    assert expirations(database_url) == {offer: 1}
    assert stuck in open_offers(store, broken_id) and stuck in deadlines(database_url)
    assert offer not in open_offers(store, fine_id)


def test_the_status_tells_unread_events_open_offers_and_how_overdue(
    store: TicketingService, follower: OfferDeadlineFollower, clock: Clock
) -> None:
    event_id, holders = offer_event(store, seats=2, waiting=2)
    cancel_into_offers(store, holders)
    before = follower.status()
    assert before.events == before.head > 0 and before.open_offers == 0

    follower.process_available()
    caught_up = follower.status()
    assert caught_up.events == 0 and caught_up.open_offers == 2
    assert caught_up.next_deadline == min(open_offers(store, event_id).values())
    assert caught_up.overdue_seconds == 0

    clock.offset = timedelta(seconds=TTL + 5)  # as if the follower were down for 5 s
    assert 4 < follower.status().overdue_seconds < 6


def test_expire_offers_status_is_a_health_check(
    store: TicketingService,
    follower: OfferDeadlineFollower,
    database_url: str,
    clock: Clock,
    capsys,
) -> None:
    _event_id, holders = offer_event(store, seats=1, waiting=1)
    cancel_into_offers(store, holders)
    follower.process_available()
    command = ["--database-url", database_url, "expire-offers", "--status"]
    assert main([*command, "--max-overdue-seconds", "10"]) == 0
    assert "1 open" in capsys.readouterr().out

    clock.offset = timedelta(seconds=TTL + 30)
    assert main(command) == 0  # no limit given: a report only
    assert main([*command, "--max-overdue-seconds", "10"]) == 1
    assert "overdue beyond the limit" in capsys.readouterr().err


def test_the_compose_follower_runs_expire_offers_and_is_checked_by_its_status(
    store: TicketingService, follower: OfferDeadlineFollower, database_url: str, clock: Clock
) -> None:
    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    service = compose["services"]["offer-deadlines"]
    assert service["command"] == ["ticketing", "expire-offers"]
    check = service["healthcheck"]["test"]
    assert check[:3] == ["CMD", "ticketing", "expire-offers"]
    _event_id, holders = offer_event(store, seats=1, waiting=1)
    cancel_into_offers(store, holders)
    follower.process_available()
    command = ["--database-url", database_url, *check[2:]]

    clock.offset = timedelta(seconds=TTL + 20)
    assert main(command) == 0
    clock.offset = timedelta(seconds=TTL + 40)  # past the compose limit of 30 s overdue
    assert main(command) == 1


def test_expire_offers_status_is_unhealthy_on_an_unmigrated_store(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    assert main(["--database-url", url, "expire-offers", "--status"]) == 1
    assert "cannot measure" in capsys.readouterr().err


def test_the_follower_s_service_hashes_no_password(
    database_url: str, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    """The follower opens the write service for its one command: it must cost no argon2."""
    import argon2

    migrate(database_url)
    writer = open_service(database_url, **FAST_HASHING)
    _event_id, holders = offer_event(writer, seats=1, waiting=1)
    [offer] = cancel_into_offers(writer, holders)

    def refuse(*_args: object) -> str:
        raise AssertionError("a password was hashed")

    monkeypatch.setattr(argon2.PasswordHasher, "hash", refuse)
    settler = open_service(database_url)  # default argon2 cost, as ticketing expire-offers
    follower = OfferDeadlineFollower(database_url, service=settler)
    clock.offset = timedelta(seconds=PAST_DUE)
    try:
        follower.run_once()
    finally:
        follower.close()
        settler.close()
        writer.close()
    assert expirations(database_url) == {offer: 1}


def test_expire_offers_runs_until_told_to_stop(
    store: TicketingService, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's own loop, in-process: it expires what is due, then stops on SIGTERM."""
    import signal
    import threading

    # The command's signal handlers and log handler would outlive the test in this process.
    handlers: dict[int, object] = {}
    monkeypatch.setattr(
        signal, "signal", lambda signum, handler: handlers.update({signum: handler})
    )
    monkeypatch.setattr("api.request_log.configure_logging", lambda _level: None)
    _event_id, holders = offer_event(store, seats=1, waiting=1)
    [offer] = cancel_into_offers(store, holders)
    clock.offset = timedelta(seconds=PAST_DUE)

    def stop_once_expired() -> None:
        wait_until(lambda: expirations(database_url) and signal.SIGTERM in handlers)
        handlers[signal.SIGTERM](signal.SIGTERM, None)  # type: ignore[operator]

    stopper = threading.Thread(target=stop_once_expired)
    stopper.start()
    assert main(["--database-url", database_url, "expire-offers", "--poll-interval", "0.1"]) == 0
    stopper.join(5)
    assert expirations(database_url) == {offer: 1}
