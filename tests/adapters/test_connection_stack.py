"""The turns' PostgreSQL connections: reused, bounded, cleaned up, and replaced when broken."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from adapters.connection_stack import ConnectionStack
from adapters.database_url import parse_database_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def conninfo(postgres_url: str) -> str:
    return parse_database_url(postgres_url).conninfo()


@pytest.fixture
def stack(postgres_url: str) -> Iterator[ConnectionStack]:
    connections = ConnectionStack(parse_database_url(postgres_url), size=1, wait=0.2)
    yield connections
    connections.close()


def test_a_returned_connection_is_reused(stack: ConnectionStack) -> None:
    with stack.connection() as first:
        first.execute("SELECT 1")
    with stack.connection() as again:
        assert again is first


def test_a_turn_left_inside_its_transaction_is_rolled_back_with_its_lock(
    stack: ConnectionStack, conninfo: str
) -> None:
    with stack.connection() as conn:
        conn.execute("BEGIN; SELECT pg_advisory_xact_lock(4242)")
    with psycopg.connect(conninfo, autocommit=True) as other:
        assert other.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)
        other.execute("SELECT pg_advisory_unlock(4242)")
    with stack.connection() as again:
        assert again is conn
        assert again.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_no_connection_free_in_time_is_a_store_error(stack: ConnectionStack) -> None:
    with stack.connection():
        with pytest.raises(psycopg.OperationalError, match="free in time"):
            with stack.connection():
                pass  # pragma: no cover - never reached
    with stack.connection() as conn:  # the slot came back
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_connection_that_lost_its_server_is_replaced(
    stack: ConnectionStack, conninfo: str
) -> None:
    with stack.connection() as conn:
        backend = conn.info.backend_pid
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with pytest.raises(psycopg.OperationalError):
        with stack.connection() as dead:
            dead.execute("SELECT 1")
    with stack.connection() as fresh:
        assert fresh is not conn
        assert fresh.execute("SELECT 1").fetchone() == (1,)


def test_a_freed_connection_goes_to_the_longest_waiter_not_back_to_its_thread(
    postgres_url: str,
) -> None:
    stack = ConnectionStack(parse_database_url(postgres_url), size=1, wait=5)
    order: list[str] = []
    holding, waiting = threading.Event(), threading.Event()

    def waiter() -> None:
        holding.wait()
        waiting.set()
        with stack.connection():
            order.append("waiter")

    other = threading.Thread(target=waiter)
    other.start()
    try:
        with stack.connection():
            holding.set()
            waiting.wait()
            time.sleep(0.2)  # let the waiter block on the stack (not a timing assertion)
        with stack.connection():  # straight back: the waiter was first in line
            order.append("freer")
    finally:
        other.join()
        stack.close()

    assert order == ["waiter", "freer"]


def test_many_threads_cycling_through_few_connections_all_get_their_turns(
    postgres_url: str,
) -> None:
    stack = ConnectionStack(parse_database_url(postgres_url), size=2, wait=0.3)
    failures: list[BaseException] = []
    start = threading.Barrier(16)

    def cycle() -> None:
        start.wait()
        for _ in range(300):
            try:
                with stack.connection() as conn:
                    conn.execute("SELECT 1")
            except psycopg.OperationalError as error:
                failures.append(error)

    threads = [threading.Thread(target=cycle) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stack.close()

    assert failures == []


def test_each_new_connection_runs_the_setup_once(postgres_url: str) -> None:
    stack = ConnectionStack(
        parse_database_url(postgres_url), size=1, setup="PREPARE answer AS SELECT 42"
    )
    try:
        with stack.connection() as conn:
            assert conn.execute("EXECUTE answer").fetchone() == (42,)
        with stack.connection() as again:  # reused: preparing again would fail
            assert again is conn
            assert again.execute("EXECUTE answer").fetchone() == (42,)
    finally:
        stack.close()


def test_a_connection_whose_setup_fails_is_dropped_and_its_slot_freed(postgres_url: str) -> None:
    stack = ConnectionStack(
        parse_database_url(postgres_url), size=1, wait=0.2, setup="SELECT no_such_function()"
    )
    try:
        for _ in range(2):  # the second attempt gets the slot back, not a timeout
            with pytest.raises(psycopg.errors.UndefinedFunction):
                stack.acquire()
        assert stack._open == set()  # nothing left open behind the failure
    finally:
        stack.close()
