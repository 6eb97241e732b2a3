"""The projection runner on both stores: catches up, exactly once, survives faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from adapters import open_service
from domain.service import TicketingService
from projections.queries import ReadModel
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.schema import migrate
from projections.verify import verify
from tests.conftest import FAST_HASHING
from tests.projections.support import random_history, read_model_rows, stored_event_count


def assert_consistent(service: TicketingService, database_url: str, event_ids: list[str]) -> None:
    read_model = ReadModel(database_url, log=service)
    try:
        for event_id in event_ids:
            report = verify(service, read_model, event_id)
            assert report["consistent"], report["differences"][:5]
    finally:
        read_model.close()


def test_runner_catches_up_with_the_store_and_matches_a_replay(
    store: TicketingService, database_url: str
) -> None:
    event_ids = random_history(store, 600, events=2)
    runner = ProjectionRunner(database_url, log=store, batch_size=37)
    try:
        runner.start()
        assert runner.wait_until_caught_up(timeout=30)
        assert runner.lag().events == 0
    finally:
        runner.close()
    assert_consistent(store, database_url, event_ids)


def test_a_round_ends_with_a_short_batch_without_an_empty_transaction(
    store: TicketingService, database_url: str
) -> None:
    """Under an on-sale the runner is woken after every append: a round that looked again
    just to find nothing would cost a transaction each time."""
    event = store.create_event("organizer", "Rounds", 50)
    for n in range(9):
        store.book(event.id, f"fan{n}", 1)
    stored = stored_event_count(store)
    runner = ProjectionRunner(database_url, log=store, batch_size=4)
    batches: list[int] = []
    apply_batch = runner.apply_batch

    def counted(cursor):  # type: ignore[no-untyped-def]
        batches.append(apply_batch(cursor))
        return batches[-1]

    runner.apply_batch = counted  # type: ignore[method-assign]
    try:
        assert runner.process_available() == stored == 10
        assert batches == [4, 4, 2]  # not [4, 4, 2, 0]
        batches.clear()
        store.book(event.id, "late", 1)
        assert runner.process_available() == 1 and batches == [1]
    finally:
        runner.close()


def test_runner_is_woken_in_process_after_each_append(
    store: TicketingService, database_url: str
) -> None:
    runner = ProjectionRunner(database_url, log=store, poll_interval=30)
    store.after_append.append(runner.wake)  # as the embedded app wires it
    runner.start()
    try:
        event = store.create_event("organizer", "Wake", 5)
        store.book(event.id, "alice", 1)
        deadline = time.monotonic() + 5
        status = None
        read_model = ReadModel(database_url, log=store)
        while time.monotonic() < deadline:
            status = read_model.event_status(event.id)
            if status and status["booked_tickets"] == 1:
                break
            time.sleep(0.02)
        read_model.close()
        assert status is not None and status["booked_tickets"] == 1
        assert status["version"] == 2
    finally:
        runner.close()


def test_two_runners_started_by_mistake_apply_each_event_once(
    store: TicketingService, database_url: str
) -> None:
    event_ids = random_history(store, 800, events=2, seed=11)
    first = ProjectionRunner(database_url, log=store, batch_size=25)
    second = ProjectionRunner(database_url, batch_size=25)
    try:
        first.start()
        second.start()
        assert first.wait_until_caught_up(timeout=60)
    finally:
        first.close()
        second.close()
    assert_consistent(store, database_url, event_ids)
    incremental = read_model_rows(database_url)
    rebuild(database_url, log=store, progress=False)
    assert read_model_rows(database_url) == incremental


def test_rebuild_equals_incremental_projection_on_a_random_history(
    store: TicketingService, database_url: str
) -> None:
    event_ids = random_history(store, 20_000, events=4, users=5000, seed=3)
    assert stored_event_count(store) >= 20_000
    runner = ProjectionRunner(database_url, log=store, batch_size=173)
    try:
        assert runner.process_available() == stored_event_count(store)
    finally:
        runner.close()
    incremental = read_model_rows(database_url)
    processed = rebuild(database_url, log=store, progress=False)
    assert processed == stored_event_count(store)
    assert read_model_rows(database_url) == incremental
    assert_consistent(store, database_url, event_ids)


def test_projection_process_killed_mid_stream_resumes_exactly_once(
    store: TicketingService, database_url: str
) -> None:
    event_ids = random_history(store, 5_000, events=3, users=2000, seed=5)
    head = stored_event_count(store)
    assert head >= 5_000
    command = [sys.executable, "-m", "api.cli", "project", "--batch-size", "20",
               "--poll-interval", "0.05"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "DATABASE_URL": database_url}
    read_model = ReadModel(database_url, log=store)
    runner = ProjectionRunner(database_url, log=store)
    try:
        victim = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while runner.position() < head // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = runner.position()
        assert 0 < killed_at < head, "the kill must land mid-stream"

        survivor = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while runner.position() < head and time.monotonic() < deadline:
            time.sleep(0.05)
        survivor.terminate()
        survivor.wait(10)
        assert runner.position() == head
    finally:
        read_model.close()
        runner.close()
    assert_consistent(store, database_url, event_ids)
    incremental = read_model_rows(database_url)
    rebuild(database_url, log=store, progress=False)
    assert read_model_rows(database_url) == incremental


@pytest.mark.postgres
def test_runner_survives_its_connections_being_terminated(postgres_url: str) -> None:
    import psycopg

    from adapters.database_url import parse_database_url

    store = open_service(postgres_url, create_tables=True, **FAST_HASHING)
    migrate(postgres_url)
    event_ids = random_history(store, 3_000, events=2, seed=9)
    head = stored_event_count(store)
    runner = ProjectionRunner(postgres_url, batch_size=20, poll_interval=0.05)
    killer = psycopg.connect(parse_database_url(postgres_url).conninfo(), autocommit=True)
    try:
        runner.start()
        terminations = 0
        deadline = time.monotonic() + 60
        while runner.position() < head // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(3):
            rows = killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            terminations += len(rows)
            time.sleep(0.2)
        assert terminations > 0
        assert runner.wait_until_caught_up(timeout=60)
    finally:
        killer.close()
        runner.close()
    assert_consistent(store, postgres_url, event_ids)
    store.close()


def test_verify_compares_at_the_version_the_read_models_reflect(
    store: TicketingService, database_url: str
) -> None:
    event = store.create_event("organizer", "Busy", 3)
    store.book(event.id, "alice", 1)
    runner = ProjectionRunner(database_url, log=store)
    read_model = ReadModel(database_url, log=store)
    try:
        runner.process_available()
        store.book(event.id, "bob", 1)  # committed, not yet projected: the read model trails

        report = verify(store, read_model, event.id)

        assert report["consistent"], report["differences"]
        with read_model.database.transaction() as cursor:  # now a real difference
            cursor.execute("UPDATE event_status SET booked_tickets = 7 WHERE event_id = ?",
                           [event.id])  # fmt: skip
        assert not verify(store, read_model, event.id)["consistent"]
    finally:
        read_model.close()
        runner.close()
