"""SIGTERM is a graceful stop: the API answers what it has in hand, the projector finishes
its batch, and both exit 0 leaving nothing half done."""

from __future__ import annotations

import json
import signal
import threading
import time

import psycopg
import pytest
import requests

from adapters import open_service
from adapters.sql import ReadModelDatabase
from api.cli import main as ticketing
from api.server import GRACEFUL_TIMEOUT_SECONDS
from bench.history import random_history
from projections import tracking
from tests.api.servers import running_projector
from tests.faults.checks import store, wait_until_projected
from tests.faults.stack import production_stack, wait_for

pytestmark = pytest.mark.slow


def _blocked_on_our_lock(conn: psycopg.Connection) -> bool:
    """Some backend of this database waits for a lock (the booking's append, behind ours)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return bool(row and row[0])


def test_sigterm_lets_an_in_flight_booking_finish_and_answer(postgres_url, tmp_path):
    with production_stack(postgres_url, tmp_path) as stack:
        _organizer_id, organizer = stack.user("organizer")
        event_id = stack.event(organizer, "Last night", 10)
        _fan_id, fan = stack.user("fan")
        answers: list[requests.Response] = []

        locker = stack.connect()
        locker.autocommit = False
        # The store serialises appends with this table lock: holding it keeps the booking
        # in flight (reads still pass, so the token check and the decision go ahead).
        locker.execute("LOCK TABLE ticketing_events IN EXCLUSIVE MODE")
        booking = threading.Thread(
            target=lambda: answers.append(
                requests.post(
                    f"{stack.base_url}/api/book",
                    json={"eventId": event_id},
                    headers={"Authorization": f"Bearer {fan}"},
                    timeout=30,
                )
            )
        )
        booking.start()
        with stack.connect() as watcher:
            assert wait_for(lambda: _blocked_on_our_lock(watcher), 10), "booking never blocked"

        stack.server.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        assert stack.server.poll() is None, "the server quit with a request in flight"
        locker.commit()  # release: the in-flight append goes through
        locker.close()
        booking.join(20)

        assert stack.server.wait(timeout=GRACEFUL_TIMEOUT_SECONDS + 5) == 0
        [answer] = answers
        assert answer.status_code == 201, answer.text
        with store(postgres_url) as service:
            stored = [type(e).__name__ for e in service.history(event_id)]
        assert stored == ["EventInitialized", "TicketBooked"]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{stack.base_url}/health", timeout=2)


def _tracking_position(database_url: str) -> int:
    database = ReadModelDatabase(database_url)
    try:
        return tracking.position(database, tracking.LIVE)
    finally:
        database.close()


def _assert_read_models_are_those_of_position(database_url: str, position: int) -> None:
    """Each event's status row is its aggregate at the last version stored up to ``position``:
    the batches that committed are wholly applied, and nothing after them."""
    service = open_service(database_url)
    database = ReadModelDatabase(database_url)
    try:
        last_version: dict[str, int] = {}
        for notification in service.recorder.select_notifications(1, position):
            if notification.topic.startswith("ticketing:Event."):
                last_version[str(notification.originator_id)] = notification.originator_version
        rows = {
            row["event_id"]: row
            for row in database.query(
                "SELECT event_id, version, booked_tickets, waiting_list_count FROM event_status"
            )
        }
        assert set(rows) == set(last_version)
        for event_id, version in last_version.items():
            aggregate = service.get_event(event_id, version=version)
            assert (
                rows[event_id]["version"],
                rows[event_id]["booked_tickets"],
                rows[event_id]["waiting_list_count"],
            ) == (version, aggregate.booked, len(aggregate.waitlist))
    finally:
        database.close()
        service.close()


def test_sigterm_lets_the_projector_finish_its_batch_and_exit_0(postgres_url, tmp_path):
    assert ticketing(["--database-url", postgres_url, "migrate"]) == 0
    service = open_service(postgres_url)
    try:
        random_history(service, 30_000, events=6)  # a backlog of many 500-event batches
        head = service.recorder.max_notification_id()
    finally:
        service.close()

    log_path = tmp_path / "project.log"
    with running_projector(postgres_url, log_path) as projector:
        assert wait_for(lambda: _tracking_position(postgres_url) > 0, 20), "never started"
        stopping_at = time.monotonic()
        projector.send_signal(signal.SIGTERM)
        exit_code = projector.wait(timeout=15)
        stopped_after = time.monotonic() - stopping_at

    assert exit_code == 0
    position = _tracking_position(postgres_url)
    print(f"\nprojector stopped {stopped_after:.2f}s after SIGTERM at {position} of {head}")
    assert position < head, "the projector ran through the whole backlog instead of stopping"
    stopped = [
        json.loads(line)
        for line in log_path.read_text().splitlines()
        if '"projection runner stopped"' in line
    ]
    assert [entry["position"] for entry in stopped] == [position]
    _assert_read_models_are_those_of_position(postgres_url, position)

    # A restart resumes from there and applies every event exactly once.
    with running_projector(postgres_url, tmp_path / "project-2.log"):
        wait_until_projected(postgres_url, timeout=60)
    assert ticketing(["--database-url", postgres_url, "verify"]) == 0
