"""What the service leaves in the store: shared by instances, snapshotted, stably named."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest

from adapters import open_service
from adapters.database_url import eventsourcing_env, parse_database_url
from adapters.sqlite import RecorderTurns
from domain.errors import ServiceBusy, UserNotFound
from domain.event import Event
from domain.service import TicketingService
from domain.settings import ServiceSettings
from tests.conftest import FAST_HASHING
from tests.domain.support import ORGANIZER, bookings, queue


@pytest.fixture
def second(database_url: str, service: TicketingService) -> Iterator[TicketingService]:
    """Another service instance (as in another worker process) on the same store."""
    other = open_service(database_url, **FAST_HASHING)
    yield other
    other.close()


def outside_the_lock_protocol(database_url: str) -> TicketingService:
    """An instance whose appends take no turn on the event (on PostgreSQL, no lock)."""
    env = eventsourcing_env(parse_database_url(database_url), create_tables=False)
    return TicketingService(
        env, turns=RecorderTurns, settings=ServiceSettings.from_strings(FAST_HASHING)
    )


def state_of(event: Event) -> dict[str, Any]:
    return {key: value for key, value in vars(event).items() if key != "_pending_events"}


def replayed(service: TicketingService, event_id: str) -> Event:
    """The aggregate rebuilt from every stored event, ignoring snapshots."""
    aggregate = None
    for domain_event in service.events.get(UUID(event_id)):
        aggregate = domain_event.mutate(aggregate)
    assert isinstance(aggregate, Event)
    return aggregate


def test_a_second_instance_sees_and_fast_forwards_the_firsts_appends(
    service: TicketingService, second: TicketingService
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=2).id
    second.book(event_id, "ann")  # the second instance now caches the event
    service.book(event_id, "bob")
    service.book(event_id, "cat")

    outcome = second.book(event_id, "dan")  # must decide on bob's and cat's appends too

    assert outcome.booking_id is None and outcome.position == 2
    assert second.lanes.stats.conflicts == 0  # it caught up before deciding
    assert bookings(second.get_event(event_id)) == {"ann": 1, "bob": 1}
    assert queue(second.get_event(event_id)) == [("cat", 1), ("dan", 1)]


def test_instances_booking_alternately_never_oversell(
    service: TicketingService, second: TicketingService
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=5, max_tickets_per_user=2).id

    outcomes = [(service, second)[n % 2].book(event_id, f"user{n}", 1 + n % 2) for n in range(10)]

    confirmed = sum(outcome.quantity for outcome in outcomes)
    assert confirmed == 5
    event = replayed(service, event_id)
    assert event.booked == 5 and event.available == 0
    assert sum(wanted for _, wanted in event.waitlist.values()) == 15 - 5


def test_a_stale_instance_loses_the_version_race_then_decides_again(
    database_url: str, service: TicketingService
) -> None:
    # The cross-process lock (PostgreSQL) makes this race rare; the store's version check is
    # what makes it harmless. Take the second writer out of the lock protocol to force it.
    second = outside_the_lock_protocol(database_url)
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    service.book(event_id, "warm-up")  # the first instance caches the event
    service.cancel("warm-up", event_id=event_id)
    interleaved: list[str] = []

    def decide(event: Event) -> Any:
        if not interleaved:  # between our read and our append, the other instance books
            interleaved.append(second.book(event_id, "bob").booking_id or "")
        return event.book("ann", 1)

    outcome = service.lanes.execute(UUID(event_id), decide)

    assert service.lanes.stats.conflicts == 1
    assert outcome.booking_id is None and outcome.position == 1  # decided again on bob's seat
    event = replayed(service, event_id)
    assert bookings(event) == {"bob": 1} and queue(event) == [("ann", 1)]
    second.close()


def test_a_turn_whose_append_is_refused_lets_go_of_the_events_lock(postgres_url: str) -> None:
    # The turn's lock is a session lock: a refused append (here a writer outside the lock
    # protocol took the version first) must not leave it held on the pooled connection.
    first = open_service(postgres_url, create_tables=True, **FAST_HASHING)
    outsider = outside_the_lock_protocol(postgres_url)
    third = open_service(postgres_url, COMMAND_MAX_ATTEMPTS="1", **FAST_HASHING)
    try:
        event_id = first.create_event(ORGANIZER, "Gig", total_tickets=4).id
        first.book(event_id, "warm-up")  # the first instance caches the event
        interleaved: list[str] = []

        def decide(event: Event) -> Any:
            if not interleaved:  # between the first's turn and its append, the outsider books
                interleaved.append(outsider.book(event_id, "bob").booking_id or "")
            return event.book("ann", 1)

        first.lanes.execute(UUID(event_id), decide)
        assert first.lanes.stats.conflicts == 1

        # Another instance gets its turn at once (one attempt; a leaked lock would time out).
        assert third.book(event_id, "cat").quantity == 1
        assert bookings(replayed(first, event_id)) == {"warm-up": 1, "bob": 1, "ann": 1, "cat": 1}
    finally:
        for instance in (first, outsider, third):
            instance.close()


def test_a_booking_that_commits_after_its_account_was_deleted_is_given_back(
    service: TicketingService,
) -> None:
    ann = service.accounts.register_user("ann", "ann@example.com", "password1")
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    service.book(event_id, "bob")  # bob holds the seat; ann will join the queue...
    service.book(event_id, "cat")  # ...behind cat
    service.cancel("bob", event_id=event_id)  # the seat goes to cat
    deleted: list[bool] = []

    def decide(event: Event) -> Any:
        if not deleted:  # ann's account is deleted while her booking is being decided
            service.delete_user(ann.id, [])
            deleted.append(True)
        return event.book(ann.id, 1)

    with pytest.raises(UserNotFound):
        service.lanes.execute(UUID(event_id), decide, actor=ann.id)

    event = replayed(service, event_id)
    assert ann.id not in event.holders
    assert bookings(event) == {"cat": 1} and queue(event) == []
    stored = [type(e).__name__ for e in service.history(event_id)]
    assert stored[-2:] == ["Waitlisted", "Cancelled"]
    assert service.book(event_id, "dan").position == 1  # the lane goes on as usual


def test_bookings_by_names_that_are_not_accounts_are_not_watched(
    service: TicketingService,
) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    assert service.book(event_id, "not-an-account-id").quantity == 1


def test_instances_racing_on_one_event_take_turns_without_conflicts_on_postgres(
    postgres_url: str,
) -> None:
    first = open_service(postgres_url, create_tables=True)
    second = open_service(postgres_url)
    try:
        event_id = first.create_event(ORGANIZER, "Gig", total_tickets=300).id

        def book_all(service: TicketingService, prefix: str) -> None:
            for n in range(150):
                service.book(event_id, f"{prefix}{n}")

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(book_all, (first, second), ("a", "b")))
        assert first.lanes.stats.conflicts == second.lanes.stats.conflicts == 0
        assert replayed(first, event_id).booked == 300
    finally:
        first.close()
        second.close()


def test_snapshots_are_written_at_the_interval_and_used_for_loading(database_url: str) -> None:
    writer = open_service(database_url, create_tables=True, SNAPSHOT_INTERVAL="10")
    event_id = writer.create_event(ORGANIZER, "Gig", total_tickets=10, max_tickets_per_user=2).id
    for n in range(24):
        writer.book(event_id, f"user{n}", 1 + n % 2)
    writer.cancel("user0", event_id=event_id)  # versions 1..26

    snapshot_versions = [s.originator_version for s in writer.snapshots.get(UUID(event_id))]
    reader = open_service(database_url, SNAPSHOT_INTERVAL="10")
    asked: list[dict[str, Any]] = []
    select_events = reader.recorder.select_events

    def spy(originator_id: Any, **kwargs: Any) -> Any:
        asked.append(kwargs)
        return select_events(originator_id, **kwargs)

    reader.recorder.select_events = spy  # type: ignore[method-assign]
    loaded = reader.get_event(event_id)

    assert snapshot_versions == [10, 20]
    assert asked == [{"gt": 20, "lte": None, "desc": False, "limit": None}]
    assert state_of(loaded) == state_of(replayed(writer, event_id))
    writer.close()
    reader.close()


def test_every_stored_topic_is_a_stable_ticketing_topic(service: TicketingService) -> None:
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=1).id
    service.book(event_id, "ann")
    service.book(event_id, "bob")
    service.cancel("ann", event_id=event_id)
    service.change_capacity(event_id, ORGANIZER, 2)
    service.close_event(event_id, ORGANIZER)
    user = service.accounts.register_user("ann", "ann@example.com", "password1")
    service.accounts.update_user(user.id, email="ann@example.org", current_password="password1")
    service.accounts.set_role(user.id, "auditor", True)
    service.delete_user(user.id, [])
    service.take_snapshot(UUID(event_id))

    notifications = service.recorder.select_notifications(start=1, limit=1000)
    snapshots = list(service.snapshots.recorder.select_events(UUID(event_id)))

    topics = {n.topic for n in notifications} | {s.topic for s in snapshots}
    assert len(notifications) == 17
    assert all(topic.startswith("ticketing:") for topic in topics), sorted(topics)


def test_a_writer_stuck_holding_an_events_lock_makes_others_busy_not_stuck(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from adapters import postgres
    from adapters.database_url import parse_database_url

    monkeypatch.setattr(postgres, "LOCK_TIMEOUT_MS", 200)
    service = open_service(postgres_url, create_tables=True, COMMAND_MAX_ATTEMPTS="2")
    event_id = service.create_event(ORGANIZER, "Gig", total_tickets=5).id
    key = int.from_bytes(UUID(event_id).bytes[:8], "big", signed=True)
    stuck = psycopg.connect(parse_database_url(postgres_url).conninfo())
    try:
        stuck.execute("SELECT pg_advisory_lock(%s)", (key,))
        with pytest.raises(ServiceBusy):
            service.book(event_id, "ann")
        stuck.execute("SELECT pg_advisory_unlock(%s)", (key,))
        assert service.book(event_id, "ann").quantity == 1
    finally:
        stuck.close()
        service.close()
