"""Faults injected into the production shape under a booking load.

Each test starts ``ticketing migrate``, two API workers (``--projector external``) and a
``ticketing project`` process on the scratch PostgreSQL database, runs a bounded booking
load that records every response, and injects one fault mid-load. Afterwards, always:

- every booking and waitlist entry a client was told about (2xx) is stored exactly once;
- no seat was oversold or lost (replayed version by version);
- ``ticketing verify`` passes: the read models equal a replay;
- the service answered 2xx again within the stated bound (the measured time is printed);
- every failed request was a 503 with Retry-After, or a dropped connection where a worker
  died under it: never a 500, never a client timeout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from adapters.database_url import parse_database_url
from projections.runner import LISTEN_APPLICATION_NAME
from tests.faults.checks import (
    assert_every_acknowledged_booking_stored_exactly_once,
    assert_failures_were_honest,
    assert_no_seat_oversold_or_lost,
    assert_read_models_equal_a_replay,
    wait_until_projected,
)
from tests.faults.load import BookingLoad, Ledger
from tests.faults.stack import Stack, wait_for

pytestmark = pytest.mark.slow

LOAD_SECONDS = 12.0
FAULT_AFTER_SECONDS = 4.0
# Stated recovery bounds (seconds): what the README promises operators.
WORKER_RECOVERY_BOUND = 5.0
WORKER_REPLACED_BOUND = 15.0
PROJECTOR_CATCH_UP_BOUND = 15.0
POSTGRES_RECOVERY_BOUND = 15.0
LISTEN_RECOVERY_BOUND = 10.0


def report(fault: str, ledger: Ledger, **seconds: float) -> None:
    measured = "  ".join(f"{name}={value:.2f}s" for name, value in seconds.items())
    print(f"\nRECOVERY {fault}: {measured}\n  outcomes: {ledger.summary()}")


def assert_consistent_afterwards(stack: Stack, ledger: Ledger, event_ids, monkeypatch) -> None:
    assert_every_acknowledged_booking_stored_exactly_once(stack.database_url, ledger, event_ids)
    assert_no_seat_oversold_or_lost(stack.database_url, event_ids)
    wait_until_projected(stack.database_url, timeout=PROJECTOR_CATCH_UP_BOUND)
    assert_read_models_equal_a_replay(stack.database_url, monkeypatch)
    for event_id in event_ids:
        status = stack.call("GET", f"/api/status/{event_id}", stack.organizer_token).json()
        assert status["bookedTickets"] + status["availableTickets"] == status["totalTickets"]


def test_a_killed_worker_is_replaced_and_the_other_keeps_serving(stack: Stack, monkeypatch):
    event_ids, crowd = stack.booking_crowd()
    load = BookingLoad(stack.base_url, crowd, duration=LOAD_SECONDS).start()
    time.sleep(FAULT_AFTER_SECONDS)
    victim, survivor = stack.worker_pids()

    fault_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(lambda: len(pids := stack.worker_pids()) == 2 and victim not in pids, 15)
    replaced_after = time.monotonic() - fault_at
    ledger = load.finish()

    assert replaced, f"the server did not replace the killed worker: {stack.worker_pids()}"
    assert survivor in stack.worker_pids()
    first_success = ledger.first_success_sent_after(fault_at)
    assert first_success is not None
    recovery = first_success.done_at - fault_at
    report(
        "worker SIGKILL", ledger, first_2xx_after_fault=recovery, replacement_forked=replaced_after
    )
    assert recovery < WORKER_RECOVERY_BOUND
    assert replaced_after < WORKER_REPLACED_BOUND
    assert_failures_were_honest(ledger, connection_errors_allowed=True)
    dropped = [o for o in ledger.failures() if o.status is None]
    assert all(o.sent_at <= fault_at + 1.0 for o in dropped), "drops long after the kill"
    assert_consistent_afterwards(stack, ledger, event_ids, monkeypatch)


def test_a_killed_projector_restarts_from_its_tracking_position(stack: Stack, monkeypatch):
    event_ids, crowd = stack.booking_crowd()
    load = BookingLoad(stack.base_url, crowd, duration=LOAD_SECONDS).start()
    time.sleep(FAULT_AFTER_SECONDS)

    fault_at = time.monotonic()
    stack.kill_projector()
    time.sleep(2.0)  # bookings go on; the read models fall behind
    stack.start_projector()
    caught_up_after = wait_until_projected(stack.database_url, timeout=PROJECTOR_CATCH_UP_BOUND)
    ledger = load.finish()

    first_success = ledger.first_success_sent_after(fault_at)
    assert first_success is not None
    report(
        "projector SIGKILL",
        ledger,
        first_2xx_after_fault=first_success.done_at - fault_at,
        read_models_caught_up_after_restart=caught_up_after,
    )
    assert ledger.failures() == [], "writes do not depend on the projector"
    assert_consistent_afterwards(stack, ledger, event_ids, monkeypatch)


def _postgres_cluster(database_url: str) -> tuple[str, str]:
    """(version, name) of the local cluster that serves the database URL's port."""
    port = parse_database_url(database_url).port
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    for line in listing.splitlines():
        version, name, cluster_port, *_rest = line.split()
        if int(cluster_port) == port:
            return version, name
    pytest.skip(f"no local PostgreSQL cluster on port {port} to restart")


def _cluster_online(version: str, name: str) -> bool:
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header", version, name], capture_output=True, text=True
    ).stdout
    return re.search(r"\bonline\b", listing) is not None


def _pg_ctlcluster(version: str, name: str, action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        check=True,
        timeout=60,
        capture_output=True,
    )


def test_a_postgresql_restart_answers_503_then_recovers(stack: Stack, monkeypatch):
    version, name = _postgres_cluster(stack.database_url)
    event_ids, crowd = stack.booking_crowd()
    load = BookingLoad(stack.base_url, crowd, duration=LOAD_SECONDS + 4).start()
    time.sleep(FAULT_AFTER_SECONDS)
    try:
        fault_at = time.monotonic()
        _pg_ctlcluster(version, name, "restart")
        back_at = time.monotonic()
    finally:
        if not _cluster_online(version, name):
            _pg_ctlcluster(version, name, "start")
    ledger = load.finish()

    first_success = ledger.first_success_sent_after(back_at)
    assert first_success is not None, ledger.summary()
    recovery = first_success.done_at - back_at
    report(
        "PostgreSQL restart",
        ledger,
        restart_took=back_at - fault_at,
        first_2xx_after_postgres_back=recovery,
        first_2xx_after_restart_began=first_success.done_at - fault_at,
    )
    assert recovery < POSTGRES_RECOVERY_BOUND
    assert_failures_were_honest(ledger, connection_errors_allowed=False)
    assert ledger.failures(since=first_success.done_at + 5) == [], "failures long after"
    assert stack.server.poll() is None and stack.projector and stack.projector.poll() is None
    assert_consistent_afterwards(stack, ledger, event_ids, monkeypatch)


def _listen_backends(stack: Stack) -> list[int]:
    with stack.connect() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE 'LISTEN%%' "
            "AND application_name = %s",
            [LISTEN_APPLICATION_NAME],
        ).fetchall()
    return [row[0] for row in rows]


def test_a_terminated_listen_connection_is_reopened(stack: Stack, monkeypatch):
    event_ids, crowd = stack.booking_crowd()
    [listener] = wait_for(lambda: _listen_backends(stack), 10) or [None]
    assert listener is not None, "the projector does not LISTEN"
    load = BookingLoad(stack.base_url, crowd, duration=LOAD_SECONDS - 4).start()
    time.sleep(FAULT_AFTER_SECONDS - 2)

    fault_at = time.monotonic()
    with stack.connect() as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", [listener]).fetchone()[0]
    reopened = wait_for(
        lambda: [pid for pid in _listen_backends(stack) if pid != listener],
        LISTEN_RECOVERY_BOUND,
    )
    listening_again_after = time.monotonic() - fault_at
    ledger = load.finish()

    assert reopened, "the projector never listened again"
    first_success = ledger.first_success_sent_after(fault_at)
    assert first_success is not None
    report(
        "LISTEN connection terminated",
        ledger,
        first_2xx_after_fault=first_success.done_at - fault_at,
        listening_again_after=listening_again_after,
    )
    assert ledger.failures() == [], "the API does not depend on the projector's LISTEN"
    assert "projection LISTEN connection lost" in stack.log_text()
    assert_consistent_afterwards(stack, ledger, event_ids, monkeypatch)
